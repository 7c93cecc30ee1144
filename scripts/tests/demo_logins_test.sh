#!/usr/bin/env bash
# The demo's login helpers (scripts/lib/demo_logins.sh) against the real servers of the local
# stack, with passwords made of every character the password generator can produce: AWS's 32
# punctuation characters, letters and digits. For each engine and password: the helper creates
# the login, the password logs in, a wrong one is refused as an authentication failure, and the
# secret JSON carries the password unchanged.
#
# Needs the stack's variables (eval "$(scripts/stack.sh env)"); without them it skips, except
# under CI=true, where it fails. The last line reads `demo logins: N passed, M failed`.
set -euo pipefail

LOG_TAG=demo-logins-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/demo_logins.sh
source "$REPO_ROOT/scripts/lib/demo_logins.sh"
# shellcheck source=scripts/lib/check.sh
source "$REPO_ROOT/scripts/lib/check.sh"

if [[ -z ${DSR_PG_ADMIN_PASSWORD:-} || -z ${DSR_MARIADB_ADMIN_PASSWORD:-} ||
    -z ${DSR_REDIS_ADMIN_PASSWORD:-} || -z ${DSR_PYTHON:-} ]]; then
    [[ ${CI:-} == true ]] && die "the stack's variables are not set (eval \"\$(scripts/stack.sh env)\")"
    log "skipped: the stack's variables are not set (eval \"\$(scripts/stack.sh env)\")"
    exit 0
fi

WORK="$(mktemp -d)"
DEMO_USER=dsr_login_t$$
cleanup() {
    local engine
    for engine in postgres mariadb redis; do "${engine}_drop_login" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

readonly PUNCTUATION='!"#$%&'"'"'()*+,-./:;<=>?@[\]^_`{|}~'
readonly LETTERS=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ
readonly DIGITS=0123456789
# shellcheck disable=SC2016  # the last one must not expand
PASSWORDS=(
    "$PUNCTUATION$LETTERS$DIGITS" # every character the generator can produce
    "ab#cd;ef"                    # a comment character in an option file
    "#$PUNCTUATION"               # nothing but punctuation, starting with a comment character
    "-p\\"                        # an option-like start, a trailing backslash
    "'; DROP USER root; --"       # quotes that would end a SQL literal
    '$(touch /nonexistent)`id`*?' # shell syntax, a glob
)

# expect_login ENGINE PWFILE STATUS: the helper's exit status is STATUS.
expect_login() {
    local rc=0
    "$1_login" "$2" >"$WORK/out" 2>&1 || rc=$?
    ((rc == $3)) || {
        sed 's/^/    /' "$WORK/out" >&2
        return 1
    }
}

json_keeps_password() {
    "$1_secret_json" "$2" | "$DSR_PYTHON" -c '
import json, sys
sys.exit(0 if json.load(sys.stdin)["password"] == open(sys.argv[1]).read() else 1)' "$2"
}

for engine in postgres mariadb redis; do
    for i in "${!PASSWORDS[@]}"; do
        pw=$WORK/pw$i
        wrong=$WORK/wrong$i
        (umask 077 && printf '%s' "${PASSWORDS[$i]}" >"$pw" && printf '%sX' "${PASSWORDS[$i]}" >"$wrong")
        what="$engine password #$i"
        check "$what: create the login" "${engine}_create_login" "$pw"
        check "$what: logs in" expect_login "$engine" "$pw" 0
        check "$what: a wrong password is refused as authentication" expect_login "$engine" "$wrong" 1
        check "$what: the secret JSON keeps it" json_keeps_password "$engine" "$pw"
    done
    check "$engine: drop the login" "${engine}_drop_login"
done

check_summary "demo logins"
