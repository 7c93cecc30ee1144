#!/usr/bin/env bash
# README.md's replay block, word for word, after `scripts/demo.sh` as README says: it waits for
# `cargo lambda watch` to listen, the invocation answers null, the function's log shows the
# replayed createSecret finding its token already AWSCURRENT, the labels are printed, the log is
# written outside the repository, and `kill "$watch"` leaves nothing listening or running. The
# demo's own "by hand" text prints the same block. README's doctor command for the demo's secret
# finds it healthy, and without TLS_EXTRA_CA_FILE fails with UnknownIssuer, as README says. Then
# `scripts/demo.sh rotate postgres` starts a fresh rotation of the same secret.
#
# Runs the demo (the stack comes up if it is down; the first run installs cargo-lambda). The
# emulator ports are free ones chosen here. The last line reads `readme replay: N passed, M
# failed`.
set -euo pipefail

LOG_TAG=readme-replay-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/check.sh
source "$REPO_ROOT/scripts/lib/check.sh"
cd "$REPO_ROOT"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CHECK_SHOW=("$WORK/out")

# Two free ports on 127.0.0.1, for the demo's emulator and the block's.
read -r DEMO_PORT BLOCK_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
export DSR_DEMO_INVOKE_PORT=$DEMO_PORT DSR_INVOKE_PORT=$BLOCK_PORT TMPDIR=$WORK

# readme_block PATTERN: the one ```sh block of README.md that contains PATTERN, as it is written.
readme_block() {
    "${PYTHON:-python3}" - README.md "$1" <<'PY'
import re, sys
blocks = re.findall(r"^```sh\n(.*?)^```", open(sys.argv[1]).read(), re.S | re.M)
found = [b for b in blocks if sys.argv[2] in b]
if len(found) != 1:
    sys.exit(f"README.md has {len(found)} sh blocks with {sys.argv[2]!r}, not one")
sys.stdout.write(found[0])
PY
}
readme_block "cargo lambda watch" >"$WORK/block.sh"
readme_block "doctor --secret db-secret-rotator/demo/postgres" >"$WORK/doctor.sh"

untracked() { git status --porcelain --untracked-files=all | sort; }
untracked >"$WORK/untracked.before"

demo() { bash scripts/demo.sh postgres >"$WORK/demo.out" 2>&1; }
CHECK_SHOW=("$WORK/demo.out")
check "scripts/demo.sh postgres" demo

# The demo's "by hand" block, without its two-space indent and the settings line of a custom
# stack, must be README's.
same_block() {
    awk '/Replay a step/ { on = 1; next } on && /^$/ { if (seen) exit; next } on { seen = 1; print }' \
        "$WORK/demo.out" | sed 's/^  //' | grep -v '^export DSR_' >"$WORK/printed.sh"
    diff "$WORK/block.sh" "$WORK/printed.sh" >"$WORK/out"
}
CHECK_SHOW=("$WORK/out")
check "the demo prints README's block" same_block

run_block() { timeout 300 bash "$WORK/block.sh" >"$WORK/out" 2>&1; }
check "the block runs" run_block
check "the invocation answers null" grep -qx null "$WORK/out"
check "the log shows the replay finding the token already AWSCURRENT" \
    grep -q 'version already staged AWSCURRENT; nothing to do' "$WORK/out"
check "the labels are printed" grep -Eq '^  [0-9a-f-]+  .*AWSCURRENT' "$WORK/out"
check "the log is outside the repository" test -s "$WORK/db-secret-rotator-watch.log"
# Neither the emulator's port nor a process of it is left (cargo-lambda takes a moment to stop).
gone() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$BLOCK_PORT") 2>/dev/null &&
        ! pgrep -f -- "--invoke-port $BLOCK_PORT" >/dev/null
}
nothing_left() { wait_until 30 "the emulator to stop" gone; }
check "after kill, nothing listens or runs" nothing_left
no_new_files() { untracked | diff "$WORK/untracked.before" - >"$WORK/out"; }
check "no new file in the repository" no_new_files

doctor_healthy() {
    bash "$WORK/doctor.sh" >"$WORK/out" 2>&1 && grep -q '1 healthy, 0 unhealthy' "$WORK/out"
}
check "README's doctor command: the demo's secret is healthy" doctor_healthy
untrusted() {
    local rc=0
    sed 's/^TLS_EXTRA_CA_FILE=[^ ]* //' "$WORK/doctor.sh" >"$WORK/untrusted.sh"
    ! grep -q TLS_EXTRA_CA_FILE "$WORK/untrusted.sh" || return 1
    bash "$WORK/untrusted.sh" >"$WORK/out" 2>&1 || rc=$?
    ((rc == 1)) && grep -q 'current-login-failed' "$WORK/out" && grep -q 'UnknownIssuer' "$WORK/out"
}
check "without TLS_EXTRA_CA_FILE: current-login-failed, UnknownIssuer (as README says)" untrusted

rotate() { bash scripts/demo.sh rotate postgres >"$WORK/out" 2>&1 && grep -q 'rejected, as it should be' "$WORK/out"; }
check "scripts/demo.sh rotate postgres: a fresh rotation" rotate

check_summary "readme replay"
