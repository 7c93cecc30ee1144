#!/usr/bin/env bash
# `scripts/stack.sh tools`, the guide's one command for its tools: it prints one line, which
# touches PATH only; in a shell without any AWS variable, that line puts `cargo lambda`, `zig`
# (which cargo-lambda links with), `sam` and `cfn-lint` on PATH and sets no AWS variable; it
# needs no running stack. It installs what is missing into ${DSR_STACK_DIR:-.stack} (the first
# time, a few minutes from PyPI). The last line reads `stack tools: N passed, M failed`.
set -euo pipefail

LOG_TAG=stack-tools-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/check.sh
source "$REPO_ROOT/scripts/lib/check.sh"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CHECK_SHOW=("$WORK/out" "$WORK/err")

# clean CMD...: CMD with no AWS variable and no stack variable, and a plain PATH.
clean() {
    env -i HOME="$HOME" PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/local/bin:/usr/bin:/bin" \
        DSR_STACK_DIR="$STACK_DIR" "$@"
}

printed() {
    clean bash "$REPO_ROOT/scripts/stack.sh" tools >"$WORK/out" 2>"$WORK/err" &&
        [[ $(wc -l <"$WORK/out") -eq 1 ]] && grep -q 'export PATH=' "$WORK/out" &&
        ! grep -q 'AWS_' "$WORK/out"
}
check "tools prints one line, which sets PATH only" printed

# shellcheck disable=SC2016  # expanded by the clean shell
on_path() {
    clean bash -c 'eval "$(cat "$1")"
        compgen -e | grep "^AWS_" && { echo "an AWS variable is set" >&2; exit 1; }
        zig version && cargo lambda --version && sam --version && cfn-lint --version' \
        _ "$WORK/out" >>"$WORK/err" 2>&1
}
check "evaluated: cargo lambda, zig, sam and cfn-lint run; no AWS variable" on_path
# shellcheck disable=SC2016
check "evaluated twice: PATH gets the directory once" \
    clean bash -c 'eval "$(cat "$1")"; eval "$(cat "$1")"; [[ $(tr : "\n" <<<"$PATH" | grep -cxF "$2") == 1 ]]' \
    _ "$WORK/out" "$STACK_DIR/bin"

check_summary "stack tools"
