# shellcheck shell=bash disable=SC2153  # HOST, the ports and paths are set by stack.sh
# moto server, the Secrets Manager emulator, for scripts/stack.sh (sourced by it). It runs from
# the tools virtualenv (scripts/lib/python.sh) and keeps its secrets in memory only: stopping it
# forgets every secret.

moto_running() { pid_alive "$MOTO_PID" moto; }

moto_start() {
    mkdir -p "$MOTO_DIR"
    if moto_running; then
        log "moto already running (pid $(pid_of "$MOTO_PID"))"
        return 0
    fi
    if moto_answers >/dev/null 2>&1; then
        die "something else already answers on $HOST:$MOTO_PORT (set DSR_MOTO_PORT)"
    fi
    log "starting moto on $HOST:$MOTO_PORT"
    (cd / && exec setsid "$TOOLS_VENV/bin/python" -m moto.server -H "$HOST" -p "$MOTO_PORT" \
        >>"$MOTO_LOG" 2>&1 </dev/null 9>&-) &
    echo $! >"$MOTO_PID"
}

moto_answers() {
    "$TOOLS_VENV/bin/python" - "http://$HOST:$MOTO_PORT/moto-api/" <<'PY'
import sys
import urllib.error
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1], timeout=2).read()
except urllib.error.HTTPError:
    pass  # any HTTP answer means the server is up
PY
}

moto_wait() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    until moto_answers >/dev/null 2>&1; do
        if ! moto_running || ((SECONDS >= deadline)); then
            log_tail "$MOTO_LOG"
            die "moto did not start on $HOST:$MOTO_PORT"
        fi
        sleep 0.25
    done
}

moto_stop() { kill_pidfile "$MOTO_PID" moto moto; }
