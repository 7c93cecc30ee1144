#!/usr/bin/env bash
# Rotates a real database password end to end on this machine, the way AWS Secrets Manager drives
# the function, with no AWS account:
#   1. brings up the local stack (scripts/stack.sh up: moto, PostgreSQL, MariaDB, a test CA);
#   2. creates a login `demo_app` with a random password, and the secret
#      db-secret-rotator/demo/<engine> that holds it;
#   3. stages AWSPENDING under the token of events/*.json with RotateSecret, as the service does;
#   4. runs the function under `cargo lambda watch` and invokes createSecret, setSecret,
#      testSecret and finishSecret with events/<step>.json;
#   5. shows the staging labels before and after, and proves over TLS (verify-full) that the new
#      password logs in and the old one is rejected.
# No password is printed. The stack is left running: `scripts/stack.sh down` stops it.
#
# Usage: scripts/demo.sh [postgres|mariadb]     (default postgres)
#   DSR_DEMO_INVOKE_PORT   port of the local Lambda emulator (default 45190)
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
readonly SECRETS_PY=(python3 "$REPO_ROOT/scripts/demo_secrets.py")
STACK_DIR=${DSR_STACK_DIR:-$REPO_ROOT/.stack}
[[ $STACK_DIR == /* ]] || STACK_DIR="$PWD/$STACK_DIR"
readonly LOG_DIR=$STACK_DIR/demo
readonly WATCH_LOG=$LOG_DIR/cargo-lambda-watch.log

WORK="$(mktemp -d)" # passwords (files, mode 0600) and invoke outputs; removed on exit
readonly WORK
WATCH_PID=

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
# Engines. Each defines:
#   <engine>_init                 sets SECRET_ID and EVENTS_DIR
#   <engine>_create_login PWFILE  creates/reset the login DEMO_USER with that password (admin)
#   <engine>_secret_json PWFILE   prints the secret JSON for DEMO_USER
#   <engine>_login PWFILE         logs in as DEMO_USER over TLS (verify-full): 0 ok, 1 auth refused,
#                                 2 anything else; prints the server's refusal on stdout

postgres_init() {
    SECRET_ID=db-secret-rotator/demo/postgres
    EVENTS_DIR=events
}

postgres_create_login() {
    local pw
    pw="$(<"$1")"
    # SQL through stdin: the password never shows up in a process list.
    PGPASSWORD=$DSR_PG_ADMIN_PASSWORD psql -X -q -v ON_ERROR_STOP=1 \
        "host=$DSR_PG_HOST port=$DSR_PG_PORT user=$DSR_PG_ADMIN_USER dbname=postgres sslmode=verify-full sslrootcert=$DSR_TEST_CA" \
        >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DEMO_USER') THEN
    CREATE ROLE $DEMO_USER LOGIN;
  END IF;
END \$\$;
ALTER ROLE $DEMO_USER WITH LOGIN PASSWORD '$pw';
SQL
}

postgres_secret_json() {
    python3 - "$1" "$DSR_PG_HOST" "$DSR_PG_PORT" "$DEMO_USER" <<'PY'
import json, sys
pwfile, host, port, user = sys.argv[1:]
print(json.dumps({
    "engine": "postgres", "host": host, "port": int(port), "username": user,
    "password": open(pwfile).read().strip(), "dbname": "postgres", "ssl": True,
    "note": "any extra key is kept",
}))
PY
}

postgres_login() {
    local err=$WORK/login.err
    if PGPASSWORD="$(<"$1")" PGCONNECT_TIMEOUT=10 psql -X -q -t -A \
        "host=$DSR_PG_HOST port=$DSR_PG_PORT user=$DEMO_USER dbname=postgres sslmode=verify-full sslrootcert=$DSR_TEST_CA" \
        -c "select 'logged in as ' || current_user || ', tls ' || (select version from pg_stat_ssl where pid = pg_backend_pid())" \
        2>"$err"; then
        return 0
    fi
    cat "$err"
    grep -q 'password authentication failed' "$err" && return 1
    return 2
}

mariadb_init() {
    SECRET_ID=db-secret-rotator/demo/mariadb
    EVENTS_DIR=events/mariadb # derived from events/*.json when missing
}

mariadb_client() {
    # $1: a client option file (user, password); the rest: client arguments.
    local cnf=$1
    shift
    mariadb --defaults-file="$cnf" --protocol=TCP -h "$DSR_MARIADB_HOST" -P "$DSR_MARIADB_PORT" \
        --ssl-ca="$DSR_TEST_CA" --ssl-verify-server-cert "$@"
}

mariadb_cnf() {
    # mariadb_cnf USER PWFILE DEST: a client option file, so no password is on a command line.
    (umask 077 && printf '[client]\nuser=%s\npassword=%s\n' "$1" "$(<"$2")" >"$3")
}

mariadb_create_login() {
    local pw
    pw="$(<"$1")"
    (umask 077 && printf '%s' "$DSR_MARIADB_ADMIN_PASSWORD" >"$WORK/admin.pw")
    mariadb_cnf "$DSR_MARIADB_ADMIN_USER" "$WORK/admin.pw" "$WORK/admin.cnf"
    mariadb_client "$WORK/admin.cnf" <<SQL
CREATE USER IF NOT EXISTS '$DEMO_USER'@'%' IDENTIFIED BY '$pw';
ALTER USER '$DEMO_USER'@'%' IDENTIFIED BY '$pw';
SQL
}

mariadb_secret_json() {
    python3 - "$1" "$DSR_MARIADB_HOST" "$DSR_MARIADB_PORT" "$DEMO_USER" <<'PY'
import json, sys
pwfile, host, port, user = sys.argv[1:]
print(json.dumps({
    "engine": "mariadb", "host": host, "port": int(port), "username": user,
    "password": open(pwfile).read().strip(), "ssl": True,
    "note": "any extra key is kept",
}))
PY
}

mariadb_login() {
    local err=$WORK/login.err
    mariadb_cnf "$DEMO_USER" "$1" "$WORK/login.cnf"
    if mariadb_client "$WORK/login.cnf" -N -B \
        -e "SELECT CONCAT('logged in as ', CURRENT_USER(), ', tls ', VARIABLE_VALUE) FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version'" \
        2>"$err"; then
        return 0
    fi
    cat "$err"
    grep -q 'ERROR 1045' "$err" && return 1
    return 2
}

# ---------------------------------------------------------------------------------------------

declare -F "${ENGINE}_init" >/dev/null || die "unknown engine '$ENGINE' (use postgres or mariadb)"

# Event files: the engine's own directory, or events/*.json with the engine's SecretId.
prepare_events() {
    local step
    if [[ ! -d $EVENTS_DIR ]]; then
        local derived=$WORK/events
        mkdir -p "$derived"
        for step in "${STEPS[@]}"; do
            "${SECRETS_PY[@]}" event-rewrite "events/$step.json" "$derived/$step.json" "$SECRET_ID"
        done
        EVENTS_DIR=$derived
    fi
    for step in "${STEPS[@]}"; do
        [[ -r $EVENTS_DIR/$step.json ]] || die "missing event file $EVENTS_DIR/$step.json"
        [[ "$("${SECRETS_PY[@]}" event-field "$EVENTS_DIR/$step.json" SecretId)" == "$SECRET_ID" ]] ||
            die "$EVENTS_DIR/$step.json does not name SecretId $SECRET_ID"
    done
    TOKEN="$("${SECRETS_PY[@]}" event-field "$EVENTS_DIR/createSecret.json" ClientRequestToken)"
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

main() {
    local t0 step
    t0=$SECONDS
    "${ENGINE}_init"

    say "local stack"
    scripts/stack.sh up
    eval "$(scripts/stack.sh env)"
    if ! cargo lambda --version >/dev/null 2>&1; then
        pip_install cargo-lambda
        cargo lambda --version >/dev/null 2>&1 || die "cargo lambda is still missing after pip install"
    fi
    prepare_events

    say "$ENGINE login '$DEMO_USER' and secret '$SECRET_ID'"
    new_password_file "$WORK/old.pw"
    "${ENGINE}_create_login" "$WORK/old.pw"
    log "login '$DEMO_USER' created with a random password"
    "${ENGINE}_secret_json" "$WORK/old.pw" | "${SECRETS_PY[@]}" create "$SECRET_ID"
    "${SECRETS_PY[@]}" stage "$SECRET_ID" "$TOKEN" "$LAMBDA_ARN"
    printf 'staging labels before:\n'
    "${SECRETS_PY[@]}" labels "$SECRET_ID"

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
    "${SECRETS_PY[@]}" labels "$SECRET_ID"
    printf '(Secrets Manager removes AWSPENDING itself once finishSecret returns; moto, which does\n'
    printf ' not drive the rotation, leaves it on the new version.)\n'
    printf 'keys of the AWSCURRENT secret: %s\n' "$("${SECRETS_PY[@]}" keys "$SECRET_ID" AWSCURRENT)"
    "${SECRETS_PY[@]}" password "$SECRET_ID" AWSCURRENT "$WORK/new.pw"
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

    say "timings"
    printf '%s\n' "${timings[@]}"
    printf '  %-13s %6d ms\n' "4 invocations" "$total_ms"
    printf '\ndemo passed in %ss. The stack is still running: scripts/stack.sh down stops it.\n' \
        "$((SECONDS - t0))"
}

main
