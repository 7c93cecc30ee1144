#!/usr/bin/env bash
# Rotates a real database password end to end on this machine, the way AWS Secrets Manager drives
# the function, with no AWS account:
#   1. brings up the local stack (scripts/stack.sh up: moto, PostgreSQL, MariaDB, Redis, a test
#      CA);
#   2. creates a login `demo_app` with a random password, and the secret
#      db-secret-rotator/demo/<engine> that holds it (Redis: a dual-password secret whose master
#      is the stack's Redis admin, stored as db-secret-rotator/demo/redis-master);
#   3. stages AWSPENDING under the token of the engine's events (events/*.json for PostgreSQL,
#      events/<engine>/*.json for the others) with RotateSecret, as the service does;
#   4. runs the function under `cargo lambda watch` and invokes createSecret, setSecret,
#      testSecret and finishSecret with those events;
#   5. shows the staging labels before and after, and proves over TLS (verify-full) that the new
#      password logs in and the old one is rejected (Redis, dual passwords: that the old one
#      still logs in, as AWSPREVIOUS);
#   6. replays createSecret, shows what the function logged for it, and prints the commands to do
#      the same by hand.
# No password is printed. Rust must be installed (scripts/lib/rust.sh checks it first);
# cargo-lambda is installed into the stack's virtualenv when missing. The stack and the secret
# are left in place, so the replay works afterwards; `scripts/stack.sh down` stops the stack
# (and moto forgets the secret).
#
# `rotate` starts a fresh rotation of the demo's secret, by hand, after the demo: a new token,
# the four steps, the same checks (Redis: AWSCURRENT and AWSPREVIOUS log in, the password
# before them no longer does). Secrets Manager itself removes AWSPENDING from the new version
# once finishSecret returns; moto does not, and refuses a new rotation while the label lingers
# ("Previous rotation request is still in progress"), so `rotate` removes it first, as the
# service would.
#
# Usage: scripts/demo.sh [postgres|mariadb|redis]          (default postgres)
#        scripts/demo.sh rotate [postgres|mariadb|redis]   (after the demo of that engine)
#        scripts/demo.sh --help
#   DSR_DEMO_INVOKE_PORT   port of the local Lambda emulator (default 45190)
#   DSR_STACK_DIR, DSR_*_PORT as for scripts/stack.sh
set -euo pipefail

LOG_TAG=demo
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

readonly ENGINES=(postgres mariadb redis)
MODE=demo
case ${1:-} in
    -h | --help | help)
        usage
        exit 0
        ;;
    rotate)
        MODE=rotate
        shift
        ;;
esac
readonly MODE
readonly ENGINE=${1:-postgres}
(($# <= 1)) || die "too many arguments (scripts/demo.sh --help)"
[[ " ${ENGINES[*]} " == *" $ENGINE "* ]] ||
    die "unknown engine '$ENGINE' (use ${ENGINES[*]}; scripts/demo.sh --help)"

readonly FUNCTION=db-secret-rotator
readonly LAMBDA_ARN=arn:aws:lambda:us-east-1:123456789012:function:db-secret-rotator
readonly INVOKE_HOST=127.0.0.1
readonly INVOKE_PORT=${DSR_DEMO_INVOKE_PORT:-45190}
readonly STEPS=(createSecret setSecret testSecret finishSecret)
readonly DEMO_USER=demo_app
readonly LOG_DIR=$STACK_DIR/demo
readonly WATCH_LOG=$LOG_DIR/cargo-lambda-watch.log

WORK="$(mktemp -d)" # passwords (files, mode 0600), events and invoke outputs; removed on exit
readonly WORK
WATCH_PID=
# The stack settings this run was given, for the commands printed at the end.
CALLER_STACK_VARS=()
for v in DSR_STACK_DIR DSR_MOTO_PORT DSR_PG_PORT DSR_PG_PLAIN_PORT DSR_MARIADB_PORT \
    DSR_REDIS_PORT DSR_REDIS_PLAIN_PORT; do
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
# Engines: <engine>_init sets SECRET_ID, EVENTS_DIR and DUAL (1: dual passwords, the password
# before the rotation keeps working); the logins are in scripts/lib/demo_logins.sh.

# shellcheck source=scripts/lib/demo_logins.sh
source "$REPO_ROOT/scripts/lib/demo_logins.sh"

postgres_init() {
    SECRET_ID=db-secret-rotator/demo/postgres
    EVENTS_DIR=events
    DUAL=0
}

mariadb_init() {
    SECRET_ID=db-secret-rotator/demo/mariadb
    EVENTS_DIR=events/mariadb
    DUAL=0
}

redis_init() {
    SECRET_ID=db-secret-rotator/demo/redis
    EVENTS_DIR=events/redis
    DUAL=1
}

readonly MASTER_SECRET_ID=db-secret-rotator/demo/redis-master

secrets_py() { "$DSR_PYTHON" "$REPO_ROOT/scripts/demo_secrets.py" "$@"; }

# ---------------------------------------------------------------------------------------------

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
    setsid env -u DSR_PG_ADMIN_PASSWORD -u DSR_MARIADB_ADMIN_PASSWORD -u DSR_REDIS_ADMIN_PASSWORD \
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

# invoke_step DIR STEP: invokes STEP with the event DIR/STEP.json.
invoke_step() {
    local dir=$1 step=$2 out=$WORK/$2.out rc=0
    cargo lambda invoke "$FUNCTION" --invoke-address "$INVOKE_HOST" --invoke-port "$INVOKE_PORT" \
        --data-file "$dir/$step.json" --output-format json >"$out" 2>&1 || rc=$?
    if ((rc != 0)) || grep -q '"errorType"' "$out"; then
        printf '%s failed (exit %s):\n' "$step" "$rc" >&2
        sed -e 's/^/    /' "$out" >&2
        log_tail "$WATCH_LOG" 30
        return 1
    fi
}

# rotation DIR: the four steps with the events in DIR, timed.
rotation() {
    local dir=$1 start_ms step_ms total_ms=0 step
    TIMINGS=()
    say "rotation: ${STEPS[*]}"
    for step in "${STEPS[@]}"; do
        start_ms="$(now_ms)"
        invoke_step "$dir" "$step" || die "the $step step failed"
        step_ms=$(($(now_ms) - start_ms))
        total_ms=$((total_ms + step_ms))
        TIMINGS+=("$(printf '  %-13s %6d ms' "$step" "$step_ms")")
        printf '  %-13s ok (%d ms)\n' "$step" "$step_ms"
    done
    TIMINGS+=("$(printf '  %-13s %6d ms' "4 invocations" "$total_ms")")
}

# expect_login WHAT PWFILE OUTCOME: the password in PWFILE logs in (OUTCOME "logs in") or is
# refused as an authentication failure ("rejected").
expect_login() {
    local what=$1 file=$2 outcome=$3 rc=0
    printf '%s:\n' "$what"
    "${ENGINE}_login" "$file" >"$WORK/login.out" || rc=$?
    sed -e 's/^/    /' "$WORK/login.out"
    case $outcome:$rc in
        "logs in:0") ;;
        "rejected:1") printf '    rejected, as it should be\n' ;;
        "logs in:"*) die "$what does not log in" ;;
        "rejected:0") die "$what still logs in" ;;
        *) die "the login check of $what failed for another reason than authentication" ;;
    esac
}

# result OLD [OLDER]: the labels after the rotation and the logins: the new password (from
# AWSCURRENT) logs in; OLD, the password before the rotation, is rejected, or (dual passwords)
# still logs in as AWSPREVIOUS, while OLDER, the one before it, is rejected.
result() {
    local old=$1 older=${2:-}
    say "result"
    printf 'staging labels after:\n'
    secrets_py labels "$SECRET_ID"
    printf '(Secrets Manager removes AWSPENDING itself once finishSecret returns; moto, which does\n'
    printf ' not drive the rotation, leaves it on the new version.)\n'
    printf 'keys of the AWSCURRENT secret: %s\n' "$(secrets_py keys "$SECRET_ID" AWSCURRENT)"
    secrets_py password "$SECRET_ID" AWSCURRENT "$WORK/new.pw"
    if cmp -s "$old" "$WORK/new.pw"; then
        die "AWSCURRENT still holds the old password"
    fi
    expect_login "new password (from AWSCURRENT, not shown)" "$WORK/new.pw" "logs in"
    if ((DUAL)); then
        expect_login "old password (now AWSPREVIOUS): dual passwords keep it working" "$old" "logs in"
        if [[ -n $older ]]; then
            expect_login "the password before it" "$older" rejected
        fi
    else
        expect_login "old password" "$old" rejected
    fi
}

# Replays createSecret: the guard finds the token already AWSCURRENT and returns at once. The
# invocation's answer is empty (null), so show what the function logged for it.
replay_create() {
    local offset
    offset=$(($(stat -c %s "$WATCH_LOG") + 1))
    invoke_step "$EVENTS_DIR" createSecret || die "the replayed createSecret failed"
    sleep 0.5 # the function's log lines reach the watch log through cargo lambda
    printf 'the answer is empty; the function logged:\n'
    tail -c "+$offset" "$WATCH_LOG" | grep -E 'INFO|WARN|ERROR' | sed -e 's/^/    /'
    printf 'staging labels (unchanged):\n'
    secrets_py labels "$SECRET_ID"
}

# The replay block of README.md, for this engine (after the stack settings this run was given).
by_hand() {
    local settings='' events_file=$EVENTS_DIR/createSecret.json
    ((${#CALLER_STACK_VARS[@]} == 0)) || settings="  export ${CALLER_STACK_VARS[*]}"$'\n'
    cat <<EOF
The stack and the secret $SECRET_ID are still there (until 'scripts/stack.sh down', after which
moto forgets the secret). Replay a step and look at what happened (bash):

${settings}  eval "\$(scripts/stack.sh tools)"; eval "\$(scripts/stack.sh env)"
  port=\${DSR_INVOKE_PORT:-9000} log=\${TMPDIR:-/tmp}/db-secret-rotator-watch.log
  TLS_EXTRA_CA_FILE=\$DSR_TEST_CA cargo lambda watch --ignore-changes \\
    --invoke-address 127.0.0.1 --invoke-port "\$port" >"\$log" 2>&1 &
  watch=\$!
  until (exec 3<>"/dev/tcp/127.0.0.1/\$port") 2>/dev/null || ! kill -0 "\$watch"; do sleep 0.5; done
  cargo lambda invoke $FUNCTION --invoke-address 127.0.0.1 --invoke-port "\$port" \\
    --data-file $events_file
  grep -E 'INFO|WARN|ERROR' "\$log"                       # what the function did
  "\$DSR_PYTHON" scripts/demo_secrets.py labels $SECRET_ID   # the staging labels
  kill "\$watch"                                           # stops the watch and the function

Start a fresh rotation of the secret:

${settings}  scripts/demo.sh rotate $ENGINE

This run's function log: $WATCH_LOG
EOF
}

# The stack, its variables, cargo-lambda, the engine's events.
prepare() {
    "${ENGINE}_init"
    ensure_rust
    say "local stack"
    scripts/stack.sh up
    eval "$(scripts/stack.sh env)"
    ensure_cargo_lambda
    check_events
}

# The login, its secret (and, for Redis, the master secret), and AWSPENDING staged.
create_secret() {
    say "$ENGINE login '$DEMO_USER' and secret '$SECRET_ID'"
    new_password_file "$WORK/old.pw"
    "${ENGINE}_create_login" "$WORK/old.pw"
    log "login '$DEMO_USER' created with a random password"
    if [[ $ENGINE == redis ]]; then
        redis_master_json | secrets_py create "$MASTER_SECRET_ID"
        DEMO_MASTER_ARN="$(secrets_py arn "$MASTER_SECRET_ID")"
        export DEMO_MASTER_ARN
        log "the master secret $MASTER_SECRET_ID holds the stack's Redis admin"
    fi
    "${ENGINE}_secret_json" "$WORK/old.pw" | secrets_py create "$SECRET_ID"
    secrets_py stage "$SECRET_ID" "$TOKEN" "$LAMBDA_ARN"
    printf 'staging labels before:\n'
    secrets_py labels "$SECRET_ID"
}

demo() {
    local t0=$SECONDS
    prepare
    create_secret

    say "build and start the function (cargo lambda watch)"
    cargo build --bin "$FUNCTION"
    start_watch
    rotation "$EVENTS_DIR"
    result "$WORK/old.pw"

    say "replay: createSecret again, with the same token"
    replay_create

    say "timings"
    printf '%s\n' "${TIMINGS[@]}"

    say "by hand"
    by_hand
    printf '\ndemo passed in %ss.\n' "$((SECONDS - t0))"
}

rotate() {
    local t0=$SECONDS token
    prepare
    if ! secrets_py labels "$SECRET_ID" >/dev/null 2>&1; then
        die "no secret $SECRET_ID in the stack's moto: run 'scripts/demo.sh $ENGINE' first"
    fi
    say "a fresh rotation of $SECRET_ID"
    secrets_py settle "$SECRET_ID"
    secrets_py password "$SECRET_ID" AWSCURRENT "$WORK/old.pw"
    secrets_py password "$SECRET_ID" AWSPREVIOUS "$WORK/older.pw" 2>/dev/null || rm -f "$WORK/older.pw"
    token="$("$DSR_PYTHON" -c 'import uuid; print(uuid.uuid4())')"
    secrets_py stage "$SECRET_ID" "$token" "$LAMBDA_ARN"
    mkdir -p "$WORK/events"
    secrets_py events "$EVENTS_DIR" "$token" "$WORK/events"
    printf 'staging labels before:\n'
    secrets_py labels "$SECRET_ID"

    say "build and start the function (cargo lambda watch)"
    cargo build --bin "$FUNCTION"
    start_watch
    rotation "$WORK/events"
    if [[ -s $WORK/older.pw ]]; then
        result "$WORK/old.pw" "$WORK/older.pw"
    else
        result "$WORK/old.pw"
    fi

    say "timings"
    printf '%s\n' "${TIMINGS[@]}"
    printf '\nrotation %s passed in %ss; again: scripts/demo.sh rotate %s\n' "$token" \
        "$((SECONDS - t0))" "$ENGINE"
}

"$MODE"
