#!/usr/bin/env bash
# Measures db-secret-rotator on this machine (docs/benchmarks.md says what each figure means):
#   1. brings the local stack up (scripts/stack.sh up: moto, PostgreSQL, MariaDB, Redis, a test
#      CA) and installs valgrind when it is missing;
#   2. builds the release binary alone (as it ships), then the floor (bench/floor.rs) and the
#      bench harness (bench/harness.rs: the integration suite's Runtime API emulator and Secrets
#      Manager proxy), `cargo build --release`;
#   3. builds the Lambda zips for x86_64 and arm64 with cargo lambda, for their sizes (an
#      architecture that cannot be built here is reported as unavailable);
#   4. runs scripts/bench/bench.py: at full CPU and at each CPU share (a cgroup capping the
#      function and the floor; moto and the databases stay outside it), per engine and strategy
#      (PostgreSQL single user and alternating users; MariaDB those and dual password; Redis dual
#      password), cold and warm rotations of the function and of the floor, their CPU time, peak
#      RSS and Secrets Manager calls; then the instructions of a cold rotation under callgrind;
#   5. prints the tables and writes the JSON results.
# Not part of the test suite. The stack is left running: `scripts/stack.sh down` stops it.
#
# Usage: scripts/bench.sh [--quick] [--cpu-share F]... [--runs N] [--instruction-runs N]
#                         [--no-sizes] [--engines E,...] [--strategies S,...] [--out FILE]
#   --quick              to check one change: 3 runs at the 128 MB share only, one callgrind
#                        count per figure, no sizes (the other options still apply over these)
#   --cpu-share F        measure at F of one CPU (a fraction, e.g. 0.0724, the share of a Lambda
#                        memory size, e.g. 128mb, or `full`); repeat it
#                        for several. Default: full CPU and the shares Lambda gives at 128, 256 and
#                        512 MB (memory / 1,769 MB). Fails, saying why, when the machine does not
#                        allow a CPU-capped cgroup; by default the shares are then skipped, and
#                        the output says so.
#   --runs N             repetitions of every timed figure (default 10; BENCH_RUNS works too)
#   --instruction-runs N cold rotations per group under callgrind (default 3; 0 skips them)
#   --no-sizes           skip the cargo lambda builds (the size rows then read "not built")
#   --engines E,...      only these engines (postgres, mariadb, redis; default all)
#   --strategies S,...   only these strategies (single-user, alternating-users, dual-password)
#   --out FILE           the JSON results (default ${DSR_STACK_DIR:-.stack}/bench/results.json)
#
#        scripts/bench.sh storm [--secrets N] [--tps R] [--processes P] [--timeout S]
#   A rotation storm against a write quota: the integration suite's storm test (tests/it/storm.rs,
#   with its Runtime API emulator and quota proxy), built in release mode and sized up. N secrets
#   (default 500) rotate at once through P function processes (default one per secret) under a
#   quota of R writes a second (default 25), each invocation with an S-second deadline (default
#   60). Prints wall time against the quota-bound minimum (2 x N / R), throttled answers,
#   failures and p50/p99 step durations, and copies them to ${DSR_STACK_DIR:-.stack}/bench/.
# The stack's ports and state directory follow scripts/stack.sh (DSR_STACK_DIR, DSR_*_PORT).
set -euo pipefail

LOG_TAG=bench
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

RUNS=
INSTRUCTION_RUNS=
SHARES=()
SIZES=
QUICK=0
ENGINES=postgres,mariadb,redis
STRATEGIES=single-user,alternating-users,dual-password
STACK_DIR=${DSR_STACK_DIR:-$REPO_ROOT/.stack}
[[ $STACK_DIR == /* ]] || STACK_DIR="$PWD/$STACK_DIR"
OUT=$STACK_DIR/bench/results.json
MODE=rotations
STORM_SECRETS=500
STORM_TPS=25
STORM_PROCESSES=
STORM_TIMEOUT=60

if [[ ${1:-} == storm ]]; then
    MODE=storm
    shift
fi
while (($# > 0)); do
    case "$1" in
        --secrets) STORM_SECRETS=${2:?--secrets needs a number}; shift 2 ;;
        --tps) STORM_TPS=${2:?--tps needs a number}; shift 2 ;;
        --processes) STORM_PROCESSES=${2:?--processes needs a number}; shift 2 ;;
        --timeout) STORM_TIMEOUT=${2:?--timeout needs a number of seconds}; shift 2 ;;
        --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
        --cpu-share) SHARES+=("${2:?--cpu-share needs a fraction of one CPU or full}"); shift 2 ;;
        --instruction-runs)
            INSTRUCTION_RUNS=${2:?--instruction-runs needs a number}
            shift 2
            ;;
        --no-sizes) SIZES=0; shift ;;
        --quick) QUICK=1; shift ;;
        --engines) ENGINES=${2:?--engines needs a list}; shift 2 ;;
        --strategies) STRATEGIES=${2:?--strategies needs a list}; shift 2 ;;
        --out) OUT=${2:?--out needs a path}; shift 2 ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
# --quick: the 128 MB share (128 / 1,769 MB of one CPU), 3 runs, one callgrind count, no sizes;
# options given explicitly win.
if ((QUICK)); then
    ((${#SHARES[@]} > 0)) || SHARES=(128mb)
    RUNS=${RUNS:-3}
    INSTRUCTION_RUNS=${INSTRUCTION_RUNS:-1}
    SIZES=${SIZES:-0}
fi
RUNS=${RUNS:-${BENCH_RUNS:-10}}
INSTRUCTION_RUNS=${INSTRUCTION_RUNS:-3}
SIZES=${SIZES:-1}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $INSTRUCTION_RUNS =~ ^[0-9]+$ ]] || die "--instruction-runs must be a number"
for share in "${SHARES[@]}"; do
    [[ $share == full || $share =~ ^0?\.[0-9]+$ || $share =~ ^[1-9][0-9]*mb$ ]] ||
        die "--cpu-share '$share' must be a fraction of one CPU (e.g. 0.0724), a Lambda memory size (e.g. 128mb) or 'full'"
done

readonly ARTIFACTS=$STACK_DIR/bench/artifacts
readonly BUILD_LOG=$STACK_DIR/bench/build.log

# build_zip ARCH FLAG: cargo lambda build for one architecture; copies the zip to
# $ARTIFACTS/ARCH, or writes the reason it could not be built to $ARTIFACTS/ARCH/unavailable.
build_zip() {
    local arch=$1 flag=$2 dir=$ARTIFACTS/$1
    rm -rf "$dir"
    mkdir -p "$dir"
    log "cargo lambda build --release $flag --output-format zip (log: $BUILD_LOG)"
    if cargo lambda build --release "$flag" --output-format zip --bin db-secret-rotator \
        >>"$BUILD_LOG" 2>&1; then
        cp target/lambda/db-secret-rotator/bootstrap.zip "$dir/bootstrap.zip"
    else
        log "$arch: cargo lambda build failed; reported as unavailable"
        printf 'cargo lambda build %s failed (see %s)\n' "$flag" "$BUILD_LOG" >"$dir/unavailable"
    fi
}

# storm: the storm test of the integration suite, in release mode, at the requested size.
storm() {
    local start=$SECONDS report=$STACK_DIR/bench/storm.txt
    for n in "$STORM_SECRETS" "$STORM_TIMEOUT" ${STORM_PROCESSES:+"$STORM_PROCESSES"}; do
        [[ $n =~ ^[1-9][0-9]*$ ]] || die "storm sizes must be positive integers (got '$n')"
    done
    [[ $STORM_TPS =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--tps must be a positive number"
    mkdir -p "$STACK_DIR/bench"
    scripts/stack.sh up
    eval "$(scripts/stack.sh env)"
    log "cargo test --release --test it --no-run (log: $BUILD_LOG)"
    cargo test --release --test it --no-run >"$BUILD_LOG" 2>&1 ||
        { log_tail "$BUILD_LOG"; die "the release build of the integration tests failed"; }
    log "storm: $STORM_SECRETS secrets, ${STORM_PROCESSES:-$STORM_SECRETS} processes, $STORM_TPS writes/s, ${STORM_TIMEOUT}s per invocation"
    # The function processes log at INFO, as in production; the test's own checks still run.
    CI=true DSR_STORM_SECRETS=$STORM_SECRETS DSR_STORM_TPS=$STORM_TPS \
        DSR_STORM_PROCESSES=${STORM_PROCESSES:-$STORM_SECRETS} DSR_STORM_TIMEOUT_SECS=$STORM_TIMEOUT \
        DSR_STORM_LOG_LEVEL=INFO \
        cargo test --release --test it -- --ignored --exact storm::a_storm_of_rotations_rides_out_the_write_quota \
        >"$STACK_DIR/bench/storm.log" 2>&1 ||
        { log_tail "$STACK_DIR/bench/storm.log" 60; die "the storm failed (log: $STACK_DIR/bench/storm.log)"; }
    cp target/tmp/storm.txt "$report"
    cat "$report"
    log "done in $((SECONDS - start))s; figures in $report; the stack is still running"
}

main() {
    local start=$SECONDS
    mkdir -p "$STACK_DIR/bench"
    : >"$BUILD_LOG"

    scripts/stack.sh up
    eval "$(scripts/stack.sh env)"
    if ((INSTRUCTION_RUNS > 0)) && ! have valgrind; then
        apt_install valgrind
    fi

    # The function alone first: built together with the examples, it would get the features that
    # the dev-dependencies add (tokio's test-util, …), and not be the binary that ships.
    log "cargo build --release (the function, then the floor and the bench harness; log: $BUILD_LOG)"
    if ! { cargo build --release --bin db-secret-rotator >>"$BUILD_LOG" 2>&1 &&
        cargo build --release --example floor --example bench-harness >>"$BUILD_LOG" 2>&1; }; then
        log_tail "$BUILD_LOG"
        die "cargo build --release failed"
    fi

    if ((SIZES)); then
        if (ensure_cargo_lambda) && tools_on_path && cargo lambda --version >/dev/null 2>&1; then
            build_zip x86_64 --x86-64
            build_zip arm64 --arm64
        else
            log "cargo lambda is not available: sizes reported as unavailable"
            for arch in x86_64 arm64; do
                mkdir -p "$ARTIFACTS/$arch"
                rm -f "$ARTIFACTS/$arch/bootstrap.zip"
                echo "cargo lambda is not installed" >"$ARTIFACTS/$arch/unavailable"
            done
        fi
    else
        rm -rf "$ARTIFACTS"
    fi

    local shares=default
    if ((${#SHARES[@]} > 0)); then
        shares=$(IFS=,; echo "${SHARES[*]}")
    fi
    # bench.py drives moto through boto3, which lives in the stack's virtualenv.
    "$(stack_python)" scripts/bench/bench.py --binary target/release/db-secret-rotator \
        --floor target/release/examples/floor --harness target/release/examples/bench-harness \
        --runs "$RUNS" --out "$OUT" \
        --artifacts "$ARTIFACTS" --cpu-shares "$shares" --instruction-runs "$INSTRUCTION_RUNS" \
        --engines "$ENGINES" --strategies "$STRATEGIES"
    log "done in $((SECONDS - start))s; the stack is still running (scripts/stack.sh down stops it)"
}

if [[ $MODE == storm ]]; then
    storm
else
    main
fi
