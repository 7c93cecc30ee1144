#!/usr/bin/env bash
# Without Rust, scripts/test.sh and scripts/demo.sh stop within seconds, before starting anything,
# with a message that names rustup and the minimum Rust version (rust-version in Cargo.toml).
# PATH is reduced to /usr/bin:/bin, HOME is an empty directory (no ~/.cargo), and rustup's
# installer address is a closed port, so the "cannot be fetched" path is taken on any machine.
# The last line reads `no rust: N passed, M failed`.
set -euo pipefail

LOG_TAG=no-rust-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/check.sh
source "$REPO_ROOT/scripts/lib/check.sh"

if [[ -x /usr/bin/cargo || -x /bin/cargo ]]; then
    log "skipped: this machine has cargo in /usr/bin, so PATH=/usr/bin:/bin cannot hide Rust"
    exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
min="$(rust_min_version)"

# stops_without_rust SCRIPT: exit status 1 within 10 s, the message, and no stack started.
stops_without_rust() {
    local script=$1 out=$WORK/$1.out start=$SECONDS rc=0 problems=()
    env -i PATH=/usr/bin:/bin HOME="$WORK/home" DSR_STACK_DIR="$WORK/stack" \
        DSR_RUSTUP_INIT_URL=http://127.0.0.1:9/ \
        bash "$REPO_ROOT/scripts/$script" >"$out" 2>&1 </dev/null || rc=$?
    ((rc == 1)) || problems+=("exit status $rc, not 1")
    ((SECONDS - start <= 10)) || problems+=("took $((SECONDS - start))s")
    grep -q 'Rust is not installed' "$out" || problems+=("no 'Rust is not installed'")
    grep -q 'rustup' "$out" || problems+=("rustup not named")
    grep -q "Rust $min or newer" "$out" || problems+=("minimum version $min not named")
    [[ ! -e $WORK/stack/run && ! -e $WORK/stack/venv ]] || problems+=("it started the stack first")
    ((${#problems[@]} == 0)) && return 0
    printf '    %s\n' "${problems[@]}" >&2
    sed 's/^/    /' "$out" >&2
    return 1
}

check "test.sh without Rust" stops_without_rust test.sh
check "demo.sh without Rust" stops_without_rust demo.sh
check_summary "no rust"
