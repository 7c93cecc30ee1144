#!/usr/bin/env bash
# The project's test command (README, CI). Two profiles:
#
#   scripts/test.sh          the correctness suite, fast by default;
#   scripts/test.sh --load   the same and the load profile (DSR_LOAD=1 does the same): the
#                            integration tests marked `#[ignore = "load profile: …"]` (the full
#                            fault matrices, the storm, the soak, 50 secrets at once on each SQL
#                            server), every PostgreSQL test on PostgreSQL 18 (not only the core
#                            ones) and README's replay of the demo (scripts/tests/
#                            readme_replay_test.sh, which runs the demo through cargo lambda).
#                            CI (.ci/run) runs this.
#
# In order:
#   1. checks for Rust (stops at once, saying what to install, when there is none);
#   2. brings the local stack up (scripts/stack.sh up: moto, PostgreSQL 15 to 18, MariaDB,
#      Redis), installing what is missing;
#   3. shellcheck on scripts/, cargo fmt --check, cargo clippy --all-targets -D warnings over the
#      workspace (also without the default features), the unit tests, the integration tests
#      (tests/it, on PostgreSQL 15), and the ElastiCache and MemoryDB unit tests without the
#      default features;
#   4. with --load, the load profile's integration tests; then the PostgreSQL matrix: on 16, 17
#      and 18 the rotation, invariant, alternating-users, master and doctor tests, and with
#      --load every PostgreSQL test on 18 (DSR_PG_MATRIX=0 skips the matrix);
#   5. the scripts' own tests (scripts/tests/*.sh; README's replay with --load), the template
#      checks (scripts/check_template.sh) and the CDK example's check (scripts/check_cdk.sh).
# Every phase is timed; a summary closes the run. Every integration-test run also times each
# test: target/tmp/test-times/<run>.tsv (seconds, outcome, name; slowest first), and the
# slowest are listed after the run (docs/testing.md). On exit, pass or fail, it stops the
# services it started and only those: a stack that was already running (the demo's, say) is left
# as it was. DSR_KEEP_STACK=1 leaves everything running.
#
# The first run on a machine takes 5 to 10 minutes (packages, virtualenvs, the first build);
# later runs reuse all of it.
#
# Arguments before `--` go to cargo, those after it to the test binaries, e.g.
# `scripts/test.sh -- --nocapture`.
#
# `scripts/test.sh --pg MAJOR [TEST...]` runs only the integration tests against PostgreSQL MAJOR
# (15, 16, 17 or 18): every PostgreSQL test, or the tests whose names contain a TEST (their MariaDB
# and Redis variants aside). Arguments starting with `-` go to the test binary (`--nocapture`).
set -euo pipefail

LOG_TAG='test'
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

PG_ONLY=
LOAD=${DSR_LOAD:-0}
if [[ ${1:-} == --pg ]]; then
    [[ ${2:-} =~ ^[0-9]+$ ]] || die "usage: scripts/test.sh --pg MAJOR [TEST... | -FLAG...]"
    PG_ONLY=$2
    shift 2
elif [[ ${1:-} == --load ]]; then
    LOAD=1
    shift
fi
# Cargo's arguments, then the test binaries' (after `--`).
CARGO_ARGS=() TEST_ARGS=()
while (($# > 0)); do
    if [[ $1 == -- ]]; then
        shift
        TEST_ARGS=("$@")
        break
    fi
    CARGO_ARGS+=("$1")
    shift
done

# The PostgreSQL matrix. DSR_PG_SERVER picks the server of the integration tests' PostgreSQL
# tests (crates/testkit/src/stack.rs); cluster B, the plaintext one, stays PostgreSQL 15.
#
# Every PostgreSQL test: every integration test except the MariaDB and Redis ones and the few
# below, which use no PostgreSQL server. A new test is in the set unless it is excluded here: a
# PostgreSQL test is never left out for want of a name.
PG_ALL=(--skip mariadb --skip redis --skip guard:: --skip hostile::malformed_events
    --skip hostile::the_leak_check --skip doctor::a_missing_master --skip doctor::cli::help
    --skip doctor::cli::the_secrets_of_a_function --skip doctor::cli::the_scheduled_audit
    --skip logging::no_directive --skip logging::the_concurrency_warning --skip dual::a_forged
    --skip dual::an_account_on_another_plugin --skip dual::both_passwords --skip dual::ed25519
    --skip dual::hostile_passwords --skip dual::refusals_change_nothing)
# On the majors between the oldest and the newest: the rotations, the invariant, alternating
# users, the master's checks and the doctor (test names containing these).
PG_CORE=(single_user:: alternating:: invariant:: master doctor::)

# The integration-test binary, built (with CARGO_ARGS): its path.
it_binary() {
    cargo test --test it --no-run --message-format=json-render-diagnostics "${CARGO_ARGS[@]}" |
        "${DSR_PYTHON:-python3}" -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") \
            and message["target"]["name"] == "it":
        print(message["executable"])'
}

# it_tests RUN ARG...: the integration tests named by the ARGs (libtest filters and flags). The
# binary reports each test's time (libtest's `--report-time`, JSON events; RUSTC_BOOTSTRAP=1
# lets a stable toolchain's test harness take these flags, at run time only: nothing is
# compiled with it); scripts/lib/test_times.py prints them as cargo test would, writes
# target/tmp/test-times/RUN.tsv and lists the slowest.
it_tests() {
    local run=$1 bin
    shift
    bin="$(it_binary)"
    [[ -x $bin ]] || die "cargo test --test it --no-run built no test binary"
    mkdir -p target/tmp/test-times
    RUSTC_BOOTSTRAP=1 "$bin" -Z unstable-options --format json --report-time "$@" |
        "${DSR_PYTHON:-python3}" scripts/lib/test_times.py "target/tmp/test-times/$run.tsv"
}

# pg_tests MAJOR ARG...: the integration tests named by the ARGs (libtest filters and flags)
# against PostgreSQL MAJOR.
pg_tests() {
    local major=$1
    shift
    DSR_PG_SERVER=$major it_tests "postgres-$major" "$@"
}

ensure_rust

RUNNING_BEFORE=()
STACK_TOUCHED=0

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

if [[ -n $PG_ONLY ]]; then
    port_var=DSR_PG${PG_ONLY}_PORT
    [[ $PG_ONLY == 15 || -n ${!port_var:-} ]] ||
        die "the stack has no PostgreSQL $PG_ONLY (it serves 15, 16, 17 and 18)"
    filters=() flags=()
    for arg in "${CARGO_ARGS[@]}" "${TEST_ARGS[@]}"; do
        if [[ $arg == -* ]]; then flags+=("$arg"); else filters+=("$arg"); fi
    done
    CARGO_ARGS=()
    if ((${#filters[@]} == 0)); then
        phase "PostgreSQL $PG_ONLY: every PostgreSQL test" pg_tests "$PG_ONLY" "${PG_ALL[@]}" \
            "${flags[@]}"
    else
        phase "PostgreSQL $PG_ONLY: ${filters[*]}" pg_tests "$PG_ONLY" "${filters[@]}" \
            --skip mariadb --skip redis "${flags[@]}"
    fi
    exit 0
fi

ensure_rust_component fmt rustfmt
ensure_rust_component clippy clippy

shellcheck_scripts() {
    have shellcheck || apt_install shellcheck
    shellcheck -x -P SCRIPTDIR scripts/*.sh scripts/lib/*.sh scripts/lib/stack/*.sh scripts/tests/*.sh
}

phase "shellcheck scripts/" shellcheck_scripts
phase "cargo fmt --check" cargo fmt --all --check
phase "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
# The slim build (Cargo.toml [features]): without the ElastiCache and MemoryDB clients.
phase "cargo clippy --no-default-features" \
    cargo clippy --workspace --all-targets --no-default-features -- -D warnings
phase "unit tests" cargo test --workspace --lib --bins "${CARGO_ARGS[@]}" -- "${TEST_ARGS[@]}"
phase "integration tests" it_tests correctness "${TEST_ARGS[@]}"
phase "cargo test --no-default-features (ElastiCache and MemoryDB users)" \
    cargo test --lib --no-default-features cache_user
if ((LOAD)); then
    phase "load profile: integration tests" it_tests load --ignored "${TEST_ARGS[@]}"
fi
if [[ ${DSR_PG_MATRIX:-1} != 0 ]]; then
    if ((LOAD)); then
        phase "PostgreSQL 18: every PostgreSQL test" pg_tests 18 "${PG_ALL[@]}"
        majors=(16 17)
    else
        majors=(18 16 17)
    fi
    for major in "${majors[@]}"; do
        phase "PostgreSQL $major: rotation, invariant, master, doctor" pg_tests "$major" \
            "${PG_CORE[@]}" "${PG_ALL[@]}"
    done
fi
for t in scripts/tests/*_test.sh; do
    # README's replay runs the demo through cargo lambda (two minutes): with --load, as CI does.
    if [[ $t == */readme_replay_test.sh ]] && ((!LOAD)); then
        continue
    fi
    phase "$t" bash "$t"
done
phase "template checks" bash scripts/check_template.sh
phase "CDK example" bash scripts/check_cdk.sh
