#!/usr/bin/env bash
# Starts, stops or checks a local moto server (the AWS emulator the adapter
# tests use for DynamoDB, SQS and S3).
#
#   scripts/moto.sh start [PORT]   # default port 5000; installs moto if missing
#   scripts/moto.sh stop  [PORT]
#   scripts/moto.sh status [PORT]
#   scripts/moto.sh serve [PORT]   # run in the foreground (what `start` backgrounds)
#
# The server handles one request at a time. Stock `moto_server` runs requests
# on parallel threads without locking its backends, so two concurrent
# conditional writes to one DynamoDB item can both succeed there, which real
# DynamoDB never allows; serialised, every request is atomic as in AWS, and the
# tests of concurrent claims, rate limits and rotations mean something.
#
# Then: export MOTO_ENDPOINT=http://127.0.0.1:PORT (the tests also read
# AWS_ENDPOINT_URL, and start a private moto server themselves when neither is
# set and nothing answers on 127.0.0.1:5000).
set -euo pipefail

cmd="${1:-}"
port="${2:-${MOTO_PORT:-5000}}"
state_dir="${TMPDIR:-/tmp}"
pid_file="$state_dir/triggeriq-moto-$port.pid"
log_file="$state_dir/triggeriq-moto-$port.log"
url="http://127.0.0.1:$port"
# The version the tests were written against; any 5.x should do.
moto_spec='moto[server]>=5.1,<6'

answers() {
  python3 - "$url" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# The repo's virtualenv (scripts/setup.sh) when there is one, else the machine's python3.
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
[[ -x "$repo_root/.venv/bin/python" ]] && python="${PYTHON:-$repo_root/.venv/bin/python}"

serve() {
  if ! "$python" -c 'import moto.moto_server.werkzeug_app' 2>/dev/null; then
    echo "installing $moto_spec" >&2
    "$python" -m pip install --quiet --no-cache-dir "$moto_spec" >&2
  fi
  export MOTO_PORT="$port"
  exec "$python" - "$port" <<'PY'
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serialised(environ, start_response):
    # Produce the whole response under the lock: the backend work may be lazy.
    with lock:
        return list(app(environ, start_response))


run_simple("127.0.0.1", int(sys.argv[1]), serialised, threaded=True)
PY
}

case "$cmd" in
  serve)
    serve
    ;;
  start)
    if answers; then
      echo "moto already answers on $url"
      exit 0
    fi
    nohup bash "$0" serve "$port" >"$log_file" 2>&1 &
    echo $! >"$pid_file"
    for _ in $(seq 1 60); do
      if answers; then
        echo "moto started on $url (pid $(cat "$pid_file"), log $log_file)"
        echo "export MOTO_ENDPOINT=$url"
        exit 0
      fi
      sleep 0.5
    done
    echo "moto did not answer on $url within 30 s; log:" >&2
    cat "$log_file" >&2 || true
    exit 1
    ;;
  stop)
    if [[ -f "$pid_file" ]]; then
      pid="$(cat "$pid_file")"
      if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        echo "moto (pid $pid) stopped"
      fi
      rm -f "$pid_file"
    else
      echo "no moto started by this script on port $port"
    fi
    ;;
  status)
    if answers; then echo "moto answers on $url"; else echo "nothing answers on $url"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|status|serve [PORT]" >&2
    exit 2
    ;;
esac
