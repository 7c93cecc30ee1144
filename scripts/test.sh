#!/usr/bin/env bash
# The project's test command (README, CI): brings the local stack up (moto, PostgreSQL, MariaDB;
# see scripts/stack.sh), then runs fmt, clippy, every test target, and the template check.
# The stack is stopped on exit, pass or fail (DSR_KEEP_STACK=1 leaves it running).
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh -- --nocapture`.
set -euo pipefail

LOG_TAG='test'
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

stop_stack() {
    local rc=$?
    if [[ ${DSR_KEEP_STACK:-0} == 1 ]]; then
        log "DSR_KEEP_STACK=1: leaving the stack running"
    else
        scripts/stack.sh down || log "scripts/stack.sh down failed"
    fi
    exit "$rc"
}
trap stop_stack EXIT

step() {
    log "==> $*"
    "$@"
}

ensure_component() {
    local tool=$1 component=$2
    if ! cargo "$tool" --version >/dev/null 2>&1; then
        step rustup component add "$component"
    fi
}

step scripts/stack.sh up
eval "$(scripts/stack.sh env)"

ensure_component fmt rustfmt
ensure_component clippy clippy

step cargo fmt --all --check
step cargo clippy --all-targets -- -D warnings
step cargo test --all-targets "$@"
step bash scripts/check_template.sh

log "all checks passed"
