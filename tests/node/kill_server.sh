#!/bin/sh
# Kill a fixture server as a crash would (SIGKILL: no goodbye to its clients) and return once it is gone,
# so its port is free for the next start. Tests hand this to `rtbench check --kill-cmd`.
#
#   kill_server.sh PIDFILE      (KILL_TIMEOUT_S, default 10)
set -eu

if [ $# -ne 1 ]; then
    echo "usage: kill_server.sh PIDFILE" >&2
    exit 2
fi
pidfile=$1
timeout_s=${KILL_TIMEOUT_S:-10}

if [ ! -s "$pidfile" ]; then
    echo "kill_server.sh: no pid in $pidfile: was the server started?" >&2
    exit 1
fi
pid=$(cat "$pidfile")

# Gone, or a zombie its parent has not reaped yet (its sockets are closed already).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    case $(ps -o stat= -p "$1" 2>/dev/null) in Z*) return 1 ;; esac
}

kill -9 "$pid" 2>/dev/null || true
started=$(date +%s)
while alive "$pid"; do
    if [ $(($(date +%s) - started)) -ge "$timeout_s" ]; then
        echo "kill_server.sh: pid $pid still alive $timeout_s s after SIGKILL" >&2
        exit 1
    fi
    sleep 0.05
done
rm -f "$pidfile"
echo "kill_server.sh: pid $pid killed"
