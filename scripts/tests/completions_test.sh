#!/usr/bin/env bash
# The shell completion scripts of `db-secret-rotator completions bash|zsh|fish`, from the test
# build (target/debug/db-secret-rotator, which `cargo test` builds): bash's completes commands,
# options, --settled-after's examples and the shells, as a user pressing Tab would see them;
# zsh's and fish's parse (zsh -n, fish --no-execute; both installed with apt-get when missing).
# Without the binary it skips, except under CI=true, where it fails. The last line reads
# `completions: N passed, M failed`.
set -euo pipefail

LOG_TAG=completions-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/check.sh
source "$REPO_ROOT/scripts/lib/check.sh"

BINARY=$REPO_ROOT/target/debug/db-secret-rotator
if [[ ! -x $BINARY ]]; then
    [[ ${CI:-} == true ]] && die "$BINARY is missing (cargo test builds it)"
    log "skipped: $BINARY is missing (cargo test builds it)"
    exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CHECK_SHOW=("$WORK/out")
for shell in bash zsh fish; do
    "$BINARY" completions "$shell" >"$WORK/$shell"
done

# completes EXPECTED WORD...: bash's completion of the command line WORD... (the last word being
# completed) offers exactly EXPECTED (space-separated, in order).
completes() {
    local expected=$1
    shift
    bash -c '
        source "$1"
        shift
        COMP_WORDS=("$@")
        COMP_CWORD=$(($# - 1))
        _db_secret_rotator
        printf "%s\n" "${COMPREPLY[*]}"
    ' _ "$WORK/bash" db-secret-rotator "$@" >"$WORK/out" 2>&1 &&
        [[ "$(cat "$WORK/out")" == "$expected" ]]
}
check "bash: the commands" completes "doctor" doc
check "bash: all first words" completes "doctor completions help --help --version" ""
check "bash: doctor's options" completes "--secret --settled-after" doctor --se
check "bash: --settled-after's examples" completes "10m 30m 1h 2h" doctor --all --settled-after ""
check "bash: nothing offered for a secret's name" completes "" doctor --secret ""
check "bash: the shells" completes "bash zsh fish" completions ""
check "bash: registered for the command" grep -q '^complete -F _db_secret_rotator db-secret-rotator$' "$WORK/bash"

have zsh || apt_install zsh >/dev/null
have fish || apt_install fish >/dev/null
check "zsh: parses" zsh -n "$WORK/zsh"
check "fish: parses" fish --no-execute "$WORK/fish"

check_summary "completions"
