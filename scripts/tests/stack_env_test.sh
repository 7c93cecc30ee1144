#!/usr/bin/env bash
# `scripts/stack.sh env`: with no stack it says so and fails; with a stack that is not running it
# prints nothing and fails, naming what does not answer; for a running stack (here, listeners
# that stand in for its services) its output, evaluated, sets the region for both AWS CLI
# generations (AWS_REGION, AWS_DEFAULT_REGION), dummy AWS keys that say they are local, and says
# the admin passwords are local test values; the ports of the PostgreSQL 16-18 clusters are
# exported for the clusters the stack has (and their silence named); in that shell aws, sam and
# cdk refuse whatever could reach AWS with those keys and let local work through; dsr_stack_off
# removes it all; a stack made before Redis joined it gets no Redis variables; with the running
# stack of this test run (when its variables are set) it succeeds.
# The last line reads `stack env: N passed, M failed`.
set -euo pipefail

LOG_TAG=stack-env-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/check.sh
source "$REPO_ROOT/scripts/lib/check.sh"

WORK="$(mktemp -d)"
LISTENER=
cleanup() {
    [[ -z $LISTENER ]] || kill "$LISTENER" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
CHECK_SHOW=("$WORK/out" "$WORK/err")

# env_in DIR [PORT...]: run `stack.sh env` for the stack dir DIR on the seven ports given (moto,
# postgres-a, postgres-b, mariadb, redis TLS and plaintext, postgres-16; default: ports where
# nothing listens). PostgreSQL 17 and 18 get ports where nothing listens.
env_in() {
    local dir=$1
    shift
    local ports=("$@")
    ((${#ports[@]} == 7)) || ports=(1 2 3 4 5 6 7)
    DSR_STACK_DIR=$dir DSR_MOTO_PORT=${ports[0]} DSR_PG_PORT=${ports[1]} DSR_PG_PLAIN_PORT=${ports[2]} \
        DSR_MARIADB_PORT=${ports[3]} DSR_REDIS_PORT=${ports[4]} DSR_REDIS_PLAIN_PORT=${ports[5]} \
        DSR_PG16_PORT=${ports[6]} DSR_PG17_PORT=8 DSR_PG18_PORT=10 \
        bash "$REPO_ROOT/scripts/stack.sh" env >"$WORK/out" 2>"$WORK/err"
}

no_stack() { ! env_in "$WORK/none" && grep -q "no stack in $WORK/none" "$WORK/err" && [[ ! -s $WORK/out ]]; }
check "no stack: fails and says so" no_stack

mkdir -p "$WORK/stack/secrets"
printf 'pg-test-value\n' >"$WORK/stack/secrets/pg_admin_password"
printf 'mariadb-test-value\n' >"$WORK/stack/secrets/mariadb_admin_password"
printf 'redis-test-value\n' >"$WORK/stack/secrets/redis_admin_password"
# A cluster of PostgreSQL 16 only, as if 17 and 18 had not been set up.
mkdir -p "$WORK/stack/run/pg-16/data"
stopped() {
    ! env_in "$WORK/stack" && grep -q 'is not running' "$WORK/err" && grep -q 'redis :5' "$WORK/err" &&
        grep -q 'postgres-16 :7' "$WORK/err" && ! grep -q 'postgres-17' "$WORK/err" &&
        grep -q 'nothing printed' "$WORK/err" && [[ ! -s $WORK/out ]]
}
check "stopped stack: prints nothing, fails, names what does not answer" stopped

# Seven listeners on free ports stand in for the running services.
python3 -u -c '
import socket, sys, time
socks = []
for _ in range(7):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
time.sleep(600)
' >"$WORK/ports" &
LISTENER=$!
wait_until 10 "the stand-in listeners" test -s "$WORK/ports"
read -r -a PORTS <"$WORK/ports"

running() { env_in "$WORK/stack" "${PORTS[@]}"; }
check "a running stack: env succeeds" running

evaluated() {
    (
        unset AWS_REGION AWS_DEFAULT_REGION
        eval "$(cat "$WORK/out")" 2>/dev/null
        [[ $AWS_REGION == us-east-1 && $AWS_DEFAULT_REGION == us-east-1 ]] &&
            [[ $DSR_PG_ADMIN_PASSWORD == pg-test-value && $DSR_PYTHON == "$WORK/stack/venv/bin/python" ]] &&
            [[ $DSR_REDIS_ADMIN_PASSWORD == redis-test-value && $DSR_REDIS_PORT == "${PORTS[4]}" ]] &&
            [[ $DSR_REDIS_PLAIN_PORT == "${PORTS[5]}" && $DSR_REDIS_ACL_FILE == "$WORK/stack/run/redis/users.acl" ]] &&
            [[ $AWS_ENDPOINT_URL_SECRETS_MANAGER == "http://127.0.0.1:${PORTS[0]}" ]]
    )
}
check "evaluated: region, endpoint, passwords, python" evaluated
pg_majors() {
    (
        unset DSR_PG16_PORT DSR_PG17_PORT DSR_PG18_PORT
        eval "$(cat "$WORK/out")" 2>/dev/null
        [[ ${DSR_PG16_PORT:-} == "${PORTS[6]}" && -z ${DSR_PG17_PORT:-} && -z ${DSR_PG18_PORT:-} ]]
    )
}
check "PostgreSQL 16-18: the port of each cluster the stack has" pg_majors
labelled() {
    grep -q 'local test credentials only' "$WORK/out" &&
        grep -q '^export AWS_ACCESS_KEY_ID=DSR-LOCAL-STACK-NOT-AWS$' "$WORK/out" &&
        grep -q '^export AWS_SECRET_ACCESS_KEY=.*not-aws$' "$WORK/out"
}
check "the admin passwords and the AWS keys say they are local" labelled
no_path() { ! grep -q 'PATH' "$WORK/out"; }
check "env leaves PATH alone (scripts/stack.sh tools does that)" no_path

# The guards, with stand-ins for aws, sam and cdk that record each call they receive.
mkdir -p "$WORK/bin"
for tool in aws sam cdk; do
    printf '#!/bin/sh\necho "%s $*" >>"%s/calls"\n' "$tool" "$WORK" >"$WORK/bin/$tool"
    chmod +x "$WORK/bin/$tool"
done
# guarded COMMAND...: COMMAND's exit status in a shell that evaluated env's output (a subshell,
# whose stderr goes to $WORK/err).
guarded() (
    PATH="$WORK/bin:$PATH"
    eval "$(cat "$WORK/out")" 2>/dev/null
    "$@" 2>>"$WORK/err"
)
reaches() { : >"$WORK/calls" && guarded "$@" && grep -qxF -- "$*" "$WORK/calls"; }
refused() { : >"$WORK/calls" && : >"$WORK/err" && ! guarded "$@" && [[ ! -s $WORK/calls ]] && grep -q 'refused' "$WORK/err"; }
check "sam deploy --guided is refused" refused sam deploy --guided
check "sam sync is refused" refused sam sync --stack-name x
check "aws lambda … is refused" refused aws lambda update-function-code --function-name x
check "aws --region … cloudformation … is refused" refused aws --region eu-west-1 cloudformation describe-stacks
check "cdk deploy is refused" refused cdk deploy
check "sam build goes through" reaches sam build --beta-features
check "sam validate --lint goes through" reaches sam validate --lint
check "aws secretsmanager goes through (to moto)" reaches aws secretsmanager list-secrets
check "aws --endpoint-url <moto> goes through" reaches aws --endpoint-url "http://127.0.0.1:${PORTS[0]}" lambda list-functions
check "cdk synth goes through" reaches cdk synth
other_keys() {
    : >"$WORK/calls"
    # shellcheck disable=SC2016  # evaluated in the guarded shell
    guarded eval 'AWS_ACCESS_KEY_ID=AKIAREALKEY; sam deploy' && grep -qx 'sam deploy' "$WORK/calls"
}
check "with other keys in place, the guard stands aside" other_keys
# shellcheck disable=SC2016
off() {
    guarded eval 'dsr_stack_off
        [[ -z ${AWS_ACCESS_KEY_ID:-}${AWS_ENDPOINT_URL_SECRETS_MANAGER:-}${DSR_PG_ADMIN_PASSWORD:-} ]] &&
            [[ $(type -t aws) == file && -z $(type -t dsr_stack_guard) ]]'
}
check "dsr_stack_off removes the variables and the guards" off

mkdir -p "$WORK/old/secrets"
cp "$WORK/stack/secrets/pg_admin_password" "$WORK/stack/secrets/mariadb_admin_password" "$WORK/old/secrets/"
without_redis() {
    env_in "$WORK/old" "${PORTS[0]}" "${PORTS[1]}" "${PORTS[2]}" "${PORTS[3]}" 5 6 7 &&
        ! grep -q DSR_REDIS "$WORK/out" && ! grep -q 'redis :' "$WORK/err"
}
check "a stack made before Redis: no Redis variables, no Redis warning" without_redis

if [[ -n ${DSR_PG_ADMIN_PASSWORD:-} && -n ${DSR_STACK_DIR:-} ]]; then
    this_run() { bash "$REPO_ROOT/scripts/stack.sh" env >"$WORK/out" 2>"$WORK/err" && [[ ! -s $WORK/err ]]; }
    check "the running stack: succeeds" this_run
fi

check_summary "stack env"
