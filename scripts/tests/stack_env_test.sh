#!/usr/bin/env bash
# `scripts/stack.sh env`: with no stack it says so and fails; with a stack that is not running it
# still prints the variables but warns and fails; its output, evaluated, sets the region for both
# AWS CLI generations (AWS_REGION, AWS_DEFAULT_REGION) and says the admin passwords are local test
# values; the ports of the PostgreSQL 16-18 clusters are exported for the clusters the stack has
# (and their silence warned about); a stack made before Redis joined it gets no Redis variables;
# with the running stack of this test run (when its variables are set) it succeeds.
# The last line reads `stack env: N passed, M failed`.
set -euo pipefail

LOG_TAG=stack-env-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/check.sh
source "$REPO_ROOT/scripts/lib/check.sh"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CHECK_SHOW=("$WORK/out" "$WORK/err")

# env_in DIR: run `stack.sh env` for the stack dir DIR on ports where nothing listens.
env_in() {
    DSR_STACK_DIR=$1 DSR_MOTO_PORT=1 DSR_PG_PORT=2 DSR_PG_PLAIN_PORT=3 DSR_MARIADB_PORT=4 \
        DSR_REDIS_PORT=5 DSR_REDIS_PLAIN_PORT=6 DSR_PG16_PORT=7 DSR_PG17_PORT=8 DSR_PG18_PORT=10 \
        bash "$REPO_ROOT/scripts/stack.sh" env >"$WORK/out" 2>"$WORK/err"
}

no_stack() { ! env_in "$WORK/none" && grep -q "no stack in $WORK/none" "$WORK/err" && [[ ! -s $WORK/out ]]; }
check "no stack: fails and says so" no_stack

mkdir -p "$WORK/down/secrets"
printf 'pg-test-value\n' >"$WORK/down/secrets/pg_admin_password"
printf 'mariadb-test-value\n' >"$WORK/down/secrets/mariadb_admin_password"
printf 'redis-test-value\n' >"$WORK/down/secrets/redis_admin_password"
# A cluster of PostgreSQL 16 only, as if 17 and 18 had not been set up.
mkdir -p "$WORK/down/run/pg-16/data"
stopped() {
    ! env_in "$WORK/down" && grep -q 'is not running' "$WORK/err" &&
        grep -q '^# WARNING: the stack is not running' "$WORK/out" && grep -q 'redis :5' "$WORK/err" &&
        grep -q 'postgres-16 :7' "$WORK/err" && ! grep -q 'postgres-17' "$WORK/err"
}
check "stopped stack: warns and fails" stopped

evaluated() {
    env_in "$WORK/down" || true
    (
        unset AWS_REGION AWS_DEFAULT_REGION
        eval "$(cat "$WORK/out")"
        [[ $AWS_REGION == us-east-1 && $AWS_DEFAULT_REGION == us-east-1 ]] &&
            [[ $DSR_PG_ADMIN_PASSWORD == pg-test-value && $DSR_PYTHON == "$WORK/down/venv/bin/python" ]] &&
            [[ $DSR_REDIS_ADMIN_PASSWORD == redis-test-value && $DSR_REDIS_PORT == 5 ]] &&
            [[ $DSR_REDIS_PLAIN_PORT == 6 && $DSR_REDIS_ACL_FILE == "$WORK/down/run/redis/users.acl" ]] &&
            [[ :$PATH: == *":$WORK/down/bin:"* ]]
    )
}
check "evaluated: region, passwords, python, PATH" evaluated
pg_majors() {
    env_in "$WORK/down" || true
    (
        unset DSR_PG16_PORT DSR_PG17_PORT DSR_PG18_PORT
        eval "$(cat "$WORK/out")"
        [[ ${DSR_PG16_PORT:-} == 7 && -z ${DSR_PG17_PORT:-} && -z ${DSR_PG18_PORT:-} ]]
    )
}
check "PostgreSQL 16-18: the port of each cluster the stack has" pg_majors
labelled() { grep -q 'local test credentials only' "$WORK/out"; }
check "the admin passwords are labelled local test values" labelled

mkdir -p "$WORK/old/secrets"
cp "$WORK/down/secrets/pg_admin_password" "$WORK/down/secrets/mariadb_admin_password" "$WORK/old/secrets/"
without_redis() {
    env_in "$WORK/old" || true
    ! grep -q DSR_REDIS "$WORK/out" && ! grep -q 'redis :' "$WORK/err"
}
check "a stack made before Redis: no Redis variables, no Redis warning" without_redis

if [[ -n ${DSR_PG_ADMIN_PASSWORD:-} && -n ${DSR_STACK_DIR:-} ]]; then
    running() { bash "$REPO_ROOT/scripts/stack.sh" env >"$WORK/out" 2>"$WORK/err" && [[ ! -s $WORK/err ]]; }
    check "the running stack: succeeds, no warning" running
fi

check_summary "stack env"
