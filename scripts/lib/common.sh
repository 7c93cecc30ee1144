# shellcheck shell=bash
# Set-up shared by scripts/*.sh: logging, package installation, processes, the state directory.
# Source it (it also sources python.sh and rust.sh beside it); it defines functions, REPO_ROOT and
# STACK_DIR, and runs nothing else.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT

# Every script's state lives here: the services' data, the virtualenvs, the tools' links in bin/.
STACK_DIR=${DSR_STACK_DIR:-$REPO_ROOT/.stack}
[[ $STACK_DIR == /* ]] || STACK_DIR="$PWD/$STACK_DIR"

log() { printf '[%s] %s\n' "${LOG_TAG:-dsr}" "$*" >&2; }
die() {
    printf '[%s] ERROR: %s\n' "${LOG_TAG:-dsr}" "$*" >&2
    exit 1
}

# True if the command exists on PATH.
have() { command -v "$1" >/dev/null 2>&1; }

# apt-get install, running `apt-get update` at most once per process.
_DSR_APT_UPDATED=0
apt_install() {
    have apt-get || die "apt-get not found: install $* by hand"
    [[ $(id -u) -eq 0 ]] || die "installing $* needs root (apt-get); install it by hand or run as root"
    if [[ $_DSR_APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
        _DSR_APT_UPDATED=1
    fi
    log "apt-get install $*"
    local out
    out="$(mktemp)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends "$@" >"$out" 2>&1; then
        log_tail "$out" 60
        rm -f "$out"
        die "apt-get install $* failed"
    fi
    rm -f "$out"
}

# pid_alive PIDFILE [PATTERN]: the pid in PIDFILE runs (and its command line contains PATTERN).
pid_alive() {
    local pidfile=$1 pattern=${2:-} pid cmdline
    [[ -s $pidfile ]] || return 1
    pid="$(head -n1 "$pidfile" | tr -dc '0-9')"
    [[ -n $pid ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -n $pattern ]]; then
        cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
        [[ $cmdline == *"$pattern"* ]] || return 1
    fi
    return 0
}

pid_of() { head -n1 "$1" | tr -dc '0-9'; }

# wait_until SECONDS DESCRIPTION CMD...: retry CMD every 0.25 s until it succeeds or time runs out.
wait_until() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${timeout}s waiting for $what"
            return 1
        fi
        sleep 0.25
    done
}

# kill_pidfile PIDFILE NAME [PATTERN]: SIGTERM the process, wait up to 30 s, then SIGKILL.
kill_pidfile() {
    local pidfile=$1 name=$2 pattern=${3:-} pid i
    if ! pid_alive "$pidfile" "$pattern"; then
        rm -f "$pidfile"
        return 0
    fi
    pid="$(pid_of "$pidfile")"
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidfile"
}

# Print the last lines of a log file to stderr, for failures.
log_tail() {
    local file=$1
    if [[ -r $file ]]; then
        printf -- '----- last lines of %s -----\n' "$file" >&2
        tail -n "${2:-40}" "$file" >&2 || true
        printf -- '-----\n' >&2
    else
        printf -- '(no log at %s)\n' "$file" >&2
    fi
}

# offline CMD...: run CMD without a network. In an empty network namespace where we may (root, or
# unprivileged user namespaces); otherwise every HTTP client is pointed at a closed port.
offline() {
    if unshare --net --map-root-user true 2>/dev/null; then
        unshare --net --map-root-user "$@"
    else
        HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 \
            http_proxy=http://127.0.0.1:9 NO_PROXY='' no_proxy='' "$@"
    fi
}

# Phases with timings: `phase NAME CMD...` runs CMD, records how long it took and whether it
# passed; `phase_summary` prints the table. A failed phase stops the script unless
# PHASE_KEEP_GOING=1, in which case phase_summary's status says whether all passed.
_DSR_PHASES=()
_DSR_PHASE_FAILED=0
phase() {
    local name=$1 start=$SECONDS rc=0
    shift
    log "==> $name"
    "$@" || rc=$?
    if ((rc == 0)); then
        _DSR_PHASES+=("$(printf '  %-56s %5ss  ok' "$name" "$((SECONDS - start))")")
    else
        _DSR_PHASES+=("$(printf '  %-56s %5ss  FAILED (exit %s)' "$name" "$((SECONDS - start))" "$rc")")
        _DSR_PHASE_FAILED=1
        [[ ${PHASE_KEEP_GOING:-0} == 1 ]] || return "$rc"
    fi
}
phase_summary() {
    ((${#_DSR_PHASES[@]} > 0)) || return 0
    printf '\n%s phases:\n' "${LOG_TAG:-dsr}" >&2
    printf '%s\n' "${_DSR_PHASES[@]}" >&2
    return "$_DSR_PHASE_FAILED"
}

# shellcheck source=scripts/lib/python.sh
source "$REPO_ROOT/scripts/lib/python.sh"
# shellcheck source=scripts/lib/rust.sh
source "$REPO_ROOT/scripts/lib/rust.sh"

# started_by_us: the stack's services running now that were not running when the caller filled
# RUNNING_BEFORE (scripts/test.sh, scripts/soak_suite.sh: they stop only those at the end).
started_by_us() {
    local name before
    for name in $(scripts/stack.sh running 2>/dev/null); do
        for before in "${RUNNING_BEFORE[@]}"; do
            [[ $name == "$before" ]] && continue 2
        done
        printf '%s\n' "$name"
    done
}
