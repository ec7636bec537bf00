#!/bin/sh
# Kill a fixture server (SIGKILL) and start it again on the same port: what `rtbench check --restart-cmd`
# runs in the tests.
#
#   restart_server.sh SCRIPT PORT PIDFILE LOGFILE
set -eu

if [ $# -ne 4 ]; then
    echo "usage: restart_server.sh SCRIPT PORT PIDFILE LOGFILE" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
"$here/kill_server.sh" "$3"
exec "$here/start_server.sh" "$@"
