#!/usr/bin/env bash
# The project's test command (README, CI). In order:
#   1. checks for Rust (stops at once, saying what to install, when there is none);
#   2. brings the local stack up (scripts/stack.sh up: moto, PostgreSQL, MariaDB), installing
#      what is missing;
#   3. shellcheck on scripts/, cargo fmt --check, cargo clippy --all-targets -D warnings,
#      cargo test --all-targets;
#   4. the scripts' own tests (scripts/tests/*.sh), the template checks (scripts/check_template.sh)
#      and the CDK example's check (scripts/check_cdk.sh).
# Every phase is timed; a summary closes the run. On exit, pass or fail, it stops the services it
# started and only those: a stack that was already running (the demo's, say) is left as it was.
# DSR_KEEP_STACK=1 leaves everything running.
#
# The first run on a machine takes 5 to 10 minutes (packages, virtualenvs, the first build);
# later runs reuse all of it.
#
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh -- --nocapture`.
set -euo pipefail

LOG_TAG='test'
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

ensure_rust

RUNNING_BEFORE=()
STACK_TOUCHED=0

# The services running now that were not running before this run.
started_by_us() {
    local name before
    for name in $(scripts/stack.sh running 2>/dev/null); do
        for before in "${RUNNING_BEFORE[@]}"; do
            [[ $name == "$before" ]] && continue 2
        done
        printf '%s\n' "$name"
    done
}

finish() {
    local rc=$?
    if ((STACK_TOUCHED)); then
        local started
        mapfile -t started < <(started_by_us)
        if [[ ${DSR_KEEP_STACK:-0} == 1 ]]; then
            log "DSR_KEEP_STACK=1: leaving the stack running"
        elif ((${#started[@]} > 0)); then
            scripts/stack.sh down "${started[@]}" || log "scripts/stack.sh down ${started[*]} failed"
        else
            log "the stack was running before this run: left running"
        fi
    fi
    phase_summary || true
    if ((rc == 0)); then
        log "all checks passed in $((SECONDS))s"
    else
        log "FAILED (exit $rc) after $((SECONDS))s"
    fi
    exit "$rc"
}
trap finish EXIT

if [[ ! -d target/debug ]]; then
    log "first run on this machine: installing the services and building the tests takes 5 to 10 minutes"
fi

mapfile -t RUNNING_BEFORE < <(scripts/stack.sh running 2>/dev/null || true)
STACK_TOUCHED=1
phase "stack up" scripts/stack.sh up
eval "$(scripts/stack.sh env)"

ensure_rust_component fmt rustfmt
ensure_rust_component clippy clippy

shellcheck_scripts() {
    have shellcheck || apt_install shellcheck
    shellcheck -x -P SCRIPTDIR scripts/*.sh scripts/lib/*.sh scripts/lib/stack/*.sh scripts/tests/*.sh
}

phase "shellcheck scripts/" shellcheck_scripts
phase "cargo fmt --check" cargo fmt --all --check
phase "cargo clippy" cargo clippy --all-targets -- -D warnings
phase "cargo test" cargo test --all-targets "$@"
for t in scripts/tests/*_test.sh; do
    phase "$t" bash "$t"
done
phase "template checks" bash scripts/check_template.sh
phase "CDK example" bash scripts/check_cdk.sh
