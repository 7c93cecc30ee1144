#!/usr/bin/env bash
# Rotates a real database password end to end on this machine, the way AWS Secrets Manager drives
# the function, with no AWS account:
#   1. brings up the local stack (scripts/stack.sh up: moto, PostgreSQL, MariaDB, a test CA);
#   2. creates a login `demo_app` with a random password, and the secret
#      db-secret-rotator/demo/<engine> that holds it;
#   3. stages AWSPENDING under the token of the engine's events (events/*.json for PostgreSQL,
#      events/mariadb/*.json for MariaDB) with RotateSecret, as the service does;
#   4. runs the function under `cargo lambda watch` and invokes createSecret, setSecret,
#      testSecret and finishSecret with those events;
#   5. shows the staging labels before and after, and proves over TLS (verify-full) that the new
#      password logs in and the old one is rejected;
#   6. replays createSecret, shows what the function logged for it, and prints the commands to do
#      the same by hand.
# No password is printed. Rust must be installed (scripts/lib/rust.sh checks it first);
# cargo-lambda is installed into the stack's virtualenv when missing. The stack and the secret
# are left in place, so the replay works afterwards; `scripts/stack.sh down` stops the stack
# (and moto forgets the secret).
#
# Usage: scripts/demo.sh [postgres|mariadb]     (default postgres)
#   DSR_DEMO_INVOKE_PORT   port of the local Lambda emulator (default 45190)
#   DSR_STACK_DIR, DSR_*_PORT as for scripts/stack.sh
set -euo pipefail

LOG_TAG=demo
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

readonly ENGINE=${1:-postgres}
readonly FUNCTION=db-secret-rotator
readonly LAMBDA_ARN=arn:aws:lambda:us-east-1:123456789012:function:db-secret-rotator
readonly INVOKE_HOST=127.0.0.1
readonly INVOKE_PORT=${DSR_DEMO_INVOKE_PORT:-45190}
readonly STEPS=(createSecret setSecret testSecret finishSecret)
readonly DEMO_USER=demo_app
readonly LOG_DIR=$STACK_DIR/demo
readonly WATCH_LOG=$LOG_DIR/cargo-lambda-watch.log

WORK="$(mktemp -d)" # passwords (files, mode 0600) and invoke outputs; removed on exit
readonly WORK
WATCH_PID=
# The stack settings this run was given, for the commands printed at the end.
CALLER_STACK_VARS=()
for v in DSR_STACK_DIR DSR_MOTO_PORT DSR_PG_PORT DSR_PG_PLAIN_PORT DSR_MARIADB_PORT; do
    [[ -z ${!v:-} ]] || CALLER_STACK_VARS+=("$v=${!v}")
done

cleanup() {
    local rc=$?
    if [[ -n $WATCH_PID ]] && kill -0 "$WATCH_PID" 2>/dev/null; then
        log "stopping cargo lambda watch (pid $WATCH_PID)"
        # Its own process group (setsid): the watcher and the function process it started.
        kill -TERM -- "-$WATCH_PID" 2>/dev/null || true
        for _ in {1..40}; do
            kill -0 "$WATCH_PID" 2>/dev/null || break
            sleep 0.25
        done
        kill -KILL -- "-$WATCH_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

new_password_file() {
    (umask 077 && openssl rand -hex 16 >"$1")
}

# ---------------------------------------------------------------------------------------------
# Engines: <engine>_init sets SECRET_ID and EVENTS_DIR; the logins are in scripts/lib/demo_logins.sh.

# shellcheck source=scripts/lib/demo_logins.sh
source "$REPO_ROOT/scripts/lib/demo_logins.sh"

postgres_init() {
    SECRET_ID=db-secret-rotator/demo/postgres
    EVENTS_DIR=events
}

mariadb_init() {
    SECRET_ID=db-secret-rotator/demo/mariadb
    EVENTS_DIR=events/mariadb
}

secrets_py() { "$DSR_PYTHON" "$REPO_ROOT/scripts/demo_secrets.py" "$@"; }

# ---------------------------------------------------------------------------------------------

declare -F "${ENGINE}_init" >/dev/null || die "unknown engine '$ENGINE' (use postgres or mariadb)"

# The engine's event files must name its secret and one token.
check_events() {
    local step
    for step in "${STEPS[@]}"; do
        [[ -r $EVENTS_DIR/$step.json ]] || die "missing event file $EVENTS_DIR/$step.json"
        [[ "$(secrets_py event-field "$EVENTS_DIR/$step.json" SecretId)" == "$SECRET_ID" ]] ||
            die "$EVENTS_DIR/$step.json does not name SecretId $SECRET_ID"
    done
    TOKEN="$(secrets_py event-field "$EVENTS_DIR/createSecret.json" ClientRequestToken)"
}

watch_answers() { (exec 3<>"/dev/tcp/$INVOKE_HOST/$INVOKE_PORT") 2>/dev/null; }

start_watch() {
    mkdir -p "$LOG_DIR"
    if watch_answers; then
        die "something already listens on $INVOKE_HOST:$INVOKE_PORT (set DSR_DEMO_INVOKE_PORT)"
    fi
    log "starting cargo lambda watch on $INVOKE_HOST:$INVOKE_PORT (log: $WATCH_LOG)"
    # The function gets the endpoint and CA, not the stack's admin passwords.
    setsid env -u DSR_PG_ADMIN_PASSWORD -u DSR_MARIADB_ADMIN_PASSWORD \
        cargo lambda watch --ignore-changes \
        --invoke-address "$INVOKE_HOST" --invoke-port "$INVOKE_PORT" \
        --env-var "AWS_ENDPOINT_URL_SECRETS_MANAGER=$AWS_ENDPOINT_URL_SECRETS_MANAGER" \
        --env-var "AWS_REGION=$AWS_REGION" \
        --env-var "AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" \
        --env-var "AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY" \
        --env-var "TLS_EXTRA_CA_FILE=$DSR_TEST_CA" \
        --env-var "RUST_LOG=info" \
        >"$WATCH_LOG" 2>&1 </dev/null &
    WATCH_PID=$!
    local deadline=$((SECONDS + 300))
    until watch_answers; do
        if ! kill -0 "$WATCH_PID" 2>/dev/null || ((SECONDS >= deadline)); then
            log_tail "$WATCH_LOG"
            die "cargo lambda watch did not start"
        fi
        sleep 0.5
    done
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

invoke_step() {
    local step=$1 out=$WORK/$1.out rc=0
    cargo lambda invoke "$FUNCTION" --invoke-address "$INVOKE_HOST" --invoke-port "$INVOKE_PORT" \
        --data-file "$EVENTS_DIR/$step.json" --output-format json >"$out" 2>&1 || rc=$?
    if ((rc != 0)) || grep -q '"errorType"' "$out"; then
        printf '%s failed (exit %s):\n' "$step" "$rc" >&2
        sed -e 's/^/    /' "$out" >&2
        log_tail "$WATCH_LOG" 30
        return 1
    fi
}

# Replays createSecret: the guard finds the token already AWSCURRENT and returns at once. The
# invocation's answer is empty (null), so show what the function logged for it.
replay_create() {
    local offset
    offset=$(($(stat -c %s "$WATCH_LOG") + 1))
    invoke_step createSecret || die "the replayed createSecret failed"
    sleep 0.5 # the function's log lines reach the watch log through cargo lambda
    printf 'the answer is empty; the function logged:\n'
    tail -c "+$offset" "$WATCH_LOG" | grep -E 'INFO|WARN|ERROR' | sed -e 's/^/    /'
    printf 'staging labels (unchanged):\n'
    secrets_py labels "$SECRET_ID"
}

by_hand() {
    local env_prefix=''
    ((${#CALLER_STACK_VARS[@]} == 0)) || env_prefix="${CALLER_STACK_VARS[*]} "
    cat <<EOF
The stack and the secret $SECRET_ID are still there (until 'scripts/stack.sh down', after which
moto forgets the secret). Replay a step and look at what happened:

  eval "\$(${env_prefix}scripts/stack.sh env)"
  TLS_EXTRA_CA_FILE=\$DSR_TEST_CA cargo lambda watch --ignore-changes \\
      --invoke-address 127.0.0.1 --invoke-port 9000 >watch.log 2>&1 &
  cargo lambda invoke $FUNCTION --invoke-address 127.0.0.1 --invoke-port 9000 \\
      --data-file $EVENTS_DIR/createSecret.json
  grep -E 'INFO|WARN|ERROR' watch.log                                   # what the function did
  "\$DSR_PYTHON" scripts/demo_secrets.py labels $SECRET_ID   # the staging labels

This run's function log: $WATCH_LOG
EOF
}

main() {
    local t0 step
    t0=$SECONDS
    "${ENGINE}_init"

    ensure_rust
    say "local stack"
    scripts/stack.sh up
    eval "$(scripts/stack.sh env)"
    ensure_cargo_lambda
    check_events

    say "$ENGINE login '$DEMO_USER' and secret '$SECRET_ID'"
    new_password_file "$WORK/old.pw"
    "${ENGINE}_create_login" "$WORK/old.pw"
    log "login '$DEMO_USER' created with a random password"
    "${ENGINE}_secret_json" "$WORK/old.pw" | secrets_py create "$SECRET_ID"
    secrets_py stage "$SECRET_ID" "$TOKEN" "$LAMBDA_ARN"
    printf 'staging labels before:\n'
    secrets_py labels "$SECRET_ID"

    say "build and start the function (cargo lambda watch)"
    cargo build --bin "$FUNCTION"
    start_watch

    say "rotation: ${STEPS[*]}"
    local start_ms step_ms total_ms=0 timings=()
    for step in "${STEPS[@]}"; do
        start_ms="$(now_ms)"
        invoke_step "$step" || die "the $step step failed"
        step_ms=$(($(now_ms) - start_ms))
        total_ms=$((total_ms + step_ms))
        timings+=("$(printf '  %-13s %6d ms' "$step" "$step_ms")")
        printf '  %-13s ok (%d ms)\n' "$step" "$step_ms"
    done

    say "result"
    printf 'staging labels after:\n'
    secrets_py labels "$SECRET_ID"
    printf '(Secrets Manager removes AWSPENDING itself once finishSecret returns; moto, which does\n'
    printf ' not drive the rotation, leaves it on the new version.)\n'
    printf 'keys of the AWSCURRENT secret: %s\n' "$(secrets_py keys "$SECRET_ID" AWSCURRENT)"
    secrets_py password "$SECRET_ID" AWSCURRENT "$WORK/new.pw"
    if cmp -s "$WORK/old.pw" "$WORK/new.pw"; then
        die "AWSCURRENT still holds the old password"
    fi

    local rc=0
    printf 'new password (from AWSCURRENT, not shown):\n'
    "${ENGINE}_login" "$WORK/new.pw" >"$WORK/login.out" || rc=$?
    sed -e 's/^/    /' "$WORK/login.out"
    ((rc == 0)) || die "the new password does not log in"
    printf 'old password:\n'
    rc=0
    "${ENGINE}_login" "$WORK/old.pw" >"$WORK/login.out" || rc=$?
    sed -e 's/^/    /' "$WORK/login.out"
    case $rc in
        0) die "the old password still logs in" ;;
        1) printf '    rejected, as it should be\n' ;;
        *) die "the old-password check failed for another reason than authentication" ;;
    esac

    say "replay: createSecret again, with the same token"
    replay_create

    say "timings"
    printf '%s\n' "${timings[@]}"
    printf '  %-13s %6d ms\n' "4 invocations" "$total_ms"

    say "by hand"
    by_hand
    printf '\ndemo passed in %ss.\n' "$((SECONDS - t0))"
}

main
