#!/usr/bin/env bash
# scripts/release.sh, without building anything: --help; a working tree with uncommitted changes
# is refused before any build; an architecture whose Rust standard library is missing and cannot
# be added (a rustc that reports no aarch64 library, a rustup that fails) is skipped with a reason
# that names the target and rustup's failure, and a release with nothing to build fails saying so.
# (The packages themselves are built and run by scripts/guide_check.sh and tests/it/release.rs.)
# The last line reads `release: N passed, M failed`.
set -euo pipefail

LOG_TAG=release-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/check.sh
source "$REPO_ROOT/scripts/lib/check.sh"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CHECK_SHOW=("$WORK/out")

help_text() { bash "$REPO_ROOT/scripts/release.sh" --help >"$WORK/out" 2>&1 && grep -q 'SHA256SUMS' "$WORK/out"; }
check "--help" help_text

# A clone with a changed tracked file.
git clone --quiet --no-hardlinks "$REPO_ROOT" "$WORK/clone"
printf '\n' >>"$WORK/clone/README.md"
dirty() {
    local rc=0
    DSR_STACK_DIR=$WORK/stack bash "$WORK/clone/scripts/release.sh" --out "$WORK/dist" >"$WORK/out" 2>&1 || rc=$?
    ((rc == 1)) && grep -q 'uncommitted changes' "$WORK/out" && [[ ! -e $WORK/dist && ! -e $WORK/clone/target ]]
}
check "uncommitted changes: refused before building" dirty

# A toolchain without the aarch64 standard library, and a rustup that cannot add it.
real_rustc="$(command -v rustc)"
mkdir -p "$WORK/bin"
cat >"$WORK/bin/rustc" <<EOF
#!/bin/sh
case "\$*" in
    *"--print target-libdir --target aarch64-unknown-linux-gnu"*) echo "$WORK/no-such-libdir" ;;
    *) exec "$real_rustc" "\$@" ;;
esac
EOF
cat >"$WORK/bin/rustup" <<'EOF'
#!/bin/sh
echo "error: could not download file from 'https://static.rust-lang.org/dist/channel-rust-stable.toml.sha256'" >&2
exit 1
EOF
chmod +x "$WORK/bin/rustc" "$WORK/bin/rustup"
no_arm64() {
    local rc=0
    PATH="$WORK/bin:$PATH" bash "$REPO_ROOT/scripts/release.sh" --arch arm64 --allow-dirty \
        --out "$WORK/dist-arm64" >"$WORK/out" 2>&1 || rc=$?
    ((rc == 1)) && grep -q 'no architecture could be built' "$WORK/out" &&
        grep -q "the Rust standard library for aarch64-unknown-linux-gnu is not installed, and 'rustup target add aarch64-unknown-linux-gnu' failed: error: could not download" "$WORK/out"
}
check "no aarch64 standard library and no way to add it: skipped, and said why" no_arm64

check_summary "release"
