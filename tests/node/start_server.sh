#!/bin/sh
# Start a Node fixture server the way a user's start script would: in the background, detached from
# the caller's stdio (a caller reading our output must not wait on the server), its pid in PIDFILE.
# Returns once the server's /healthz answers with that pid (not another server's on a busy port), or
# fails with the reason. Tests hand this to `rtbench check --start-cmd` / `--restart-cmd`.
#
#   start_server.sh SCRIPT PORT PIDFILE LOGFILE      (START_TIMEOUT_S, default 15)
set -eu

if [ $# -ne 4 ]; then
    echo "usage: start_server.sh SCRIPT PORT PIDFILE LOGFILE" >&2
    exit 2
fi
script=$1 port=$2 pidfile=$3 logfile=$4
timeout_s=${START_TIMEOUT_S:-15}
name=$(basename "$script")

# Gone, or a zombie its parent has not reaped yet: either way it serves nothing.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    case $(ps -o stat= -p "$1" 2>/dev/null) in Z*) return 1 ;; esac
}

# One look at /healthz: 0 when the server answering is process $1.
healthy() {
    node -e '
        const [url, pid] = process.argv.slice(1);
        const req = require("http").get(url, { timeout: 1000 }, (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (chunk) => { body += chunk; });
            res.on("end", () => {
                let answered;
                try { answered = JSON.parse(body).pid; } catch (err) { answered = null; }
                process.exit(res.statusCode === 200 && answered === Number(pid) ? 0 : 1);
            });
        });
        req.on("timeout", () => req.destroy());
        req.on("error", () => process.exit(1));
    ' "http://127.0.0.1:$port/healthz" "$1"
}

node "$script" "$port" </dev/null >>"$logfile" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"

started=$(date +%s)
while ! healthy "$pid"; do
    if ! alive "$pid"; then
        status=0
        wait "$pid" 2>/dev/null || status=$?
        echo "start_server.sh: $name on port $port exited (status $status) before /healthz answered: $(tail -n 1 "$logfile")" >&2
        rm -f "$pidfile"
        exit 1
    fi
    if [ $(($(date +%s) - started)) -ge "$timeout_s" ]; then
        kill -9 "$pid" 2>/dev/null || true
        echo "start_server.sh: $name on port $port: /healthz did not answer within $timeout_s s (killed)" >&2
        rm -f "$pidfile"
        exit 1
    fi
    sleep 0.1
done
echo "start_server.sh: $name pid $pid healthy on port $port"
