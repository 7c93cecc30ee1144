# shellcheck shell=bash
# Database logins for scripts/demo.sh (and its test, scripts/tests/demo_logins_test.sh), per engine.
# They read the stack's variables (eval "$(scripts/stack.sh env)") and DEMO_USER, a plain
# identifier. Every function takes the password from a file, never from its arguments, and hands it
# to the client in a way that is safe for any character the password generator can produce:
#
#   PostgreSQL  the libpq variable PGPASSWORD for logins; for ALTER ROLE, psql's own literal
#               quoting (:'var', from \getenv), so quotes and backslashes stay data;
#   MariaDB     the client variable MYSQL_PWD for logins (an option file would read `#` as the
#               start of a comment); for CREATE/ALTER USER, the mysql_native_password hash,
#               computed here, so the password itself never reaches the server.
#   Redis       redis-cli's variable REDISCLI_AUTH for logins; for ACL SETUSER, the password's
#               SHA-256 (`#<hex>`), computed here, so the password itself never reaches the
#               server.
#
# Per engine:
#   <engine>_create_login PWFILE  creates DEMO_USER, or resets its password (as the admin)
#   <engine>_drop_login           drops DEMO_USER (as the admin)
#   <engine>_login PWFILE         logs in as DEMO_USER over TLS (verify-full) and prints who and
#                                 which TLS version; status 0 ok, 1 authentication refused (the
#                                 server's refusal is printed), 2 anything else
#   <engine>_secret_json PWFILE   the secret JSON of DEMO_USER, on stdout (Redis: with the
#                                 dual-password strategy and DEMO_MASTER_ARN as its masterarn)
#   redis_master_json             the secret JSON of the stack's Redis admin, the master of the
#                                 dual-password rotation

# login_outcome REFUSAL CMD...: runs a login command; status 0 when it succeeds, 1 when its error
# output contains REFUSAL (the server refused the credentials), 2 otherwise. The error is printed.
login_outcome() {
    local refusal=$1 err rc=0
    shift
    err="$(mktemp)"
    "$@" 2>"$err" || rc=$?
    if ((rc != 0)); then
        cat "$err"
        if grep -q -- "$refusal" "$err"; then rc=1; else rc=2; fi
    fi
    rm -f "$err"
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

# postgres_psql USER PASSWORD ARGS...: psql over verified TLS; the password goes in PGPASSWORD.
postgres_psql() {
    local user=$1 password=$2
    shift 2
    PGPASSWORD=$password PGCONNECT_TIMEOUT=10 psql -X -q -t -A -v ON_ERROR_STOP=1 \
        "host=$DSR_PG_HOST port=$DSR_PG_PORT user=$user dbname=postgres sslmode=verify-full sslrootcert=$DSR_TEST_CA" \
        "$@"
}

postgres_create_login() {
    DSR_LOGIN_PASSWORD="$(<"$1")" postgres_psql "$DSR_PG_ADMIN_USER" "$DSR_PG_ADMIN_PASSWORD" \
        >/dev/null <<SQL
\\getenv password DSR_LOGIN_PASSWORD
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DEMO_USER') THEN
    CREATE ROLE $DEMO_USER LOGIN;
  END IF;
END \$\$;
ALTER ROLE $DEMO_USER WITH LOGIN PASSWORD :'password';
SQL
}

postgres_drop_login() {
    postgres_psql "$DSR_PG_ADMIN_USER" "$DSR_PG_ADMIN_PASSWORD" -c "DROP ROLE IF EXISTS $DEMO_USER" >/dev/null
}

postgres_login() {
    login_outcome 'password authentication failed' postgres_psql "$DEMO_USER" "$(<"$1")" \
        -c "select 'logged in as ' || current_user || ', tls ' || (select version from pg_stat_ssl where pid = pg_backend_pid())"
}

postgres_secret_json() {
    "$DSR_PYTHON" - "$1" "$DSR_PG_HOST" "$DSR_PG_PORT" "$DEMO_USER" <<'PY'
import json, sys
pwfile, host, port, user = sys.argv[1:]
print(json.dumps({
    "engine": "postgres", "host": host, "port": int(port), "username": user,
    "password": open(pwfile).read().strip(), "dbname": "postgres", "ssl": True,
    "note": "any extra key is kept",
}))
PY
}

# ---------------------------------------------------------------------------------------------
# MariaDB

# mariadb_client USER PASSWORD ARGS...: the mariadb client over verified TLS; the password goes
# in MYSQL_PWD (--no-defaults: no option file of the machine's is read).
mariadb_client() {
    local user=$1 password=$2
    shift 2
    MYSQL_PWD=$password mariadb --no-defaults --protocol=TCP -h "$DSR_MARIADB_HOST" \
        -P "$DSR_MARIADB_PORT" -u "$user" --ssl-ca="$DSR_TEST_CA" --ssl-verify-server-cert \
        --connect-timeout=10 "$@"
}

# The mysql_native_password hash of the password in file $1: `*` and the upper-case hex of
# SHA1(SHA1(password)).
mariadb_native_hash() {
    local hex
    hex="$(tr -d '\n' <"$1" | openssl dgst -sha1 -binary | openssl dgst -sha1 | awk '{print $NF}')"
    printf '*%s\n' "${hex^^}"
}

mariadb_create_login() {
    local hash
    hash="$(mariadb_native_hash "$1")"
    mariadb_client "$DSR_MARIADB_ADMIN_USER" "$DSR_MARIADB_ADMIN_PASSWORD" <<SQL
CREATE USER IF NOT EXISTS '$DEMO_USER'@'%' IDENTIFIED BY PASSWORD '$hash';
ALTER USER '$DEMO_USER'@'%' IDENTIFIED BY PASSWORD '$hash';
SQL
}

mariadb_drop_login() {
    mariadb_client "$DSR_MARIADB_ADMIN_USER" "$DSR_MARIADB_ADMIN_PASSWORD" \
        -e "DROP USER IF EXISTS '$DEMO_USER'@'%'"
}

mariadb_login() {
    login_outcome 'ERROR 1045' mariadb_client "$DEMO_USER" "$(<"$1")" -N -B \
        -e "SELECT CONCAT('logged in as ', CURRENT_USER(), ', tls ', VARIABLE_VALUE) FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version'"
}

mariadb_secret_json() {
    "$DSR_PYTHON" - "$1" "$DSR_MARIADB_HOST" "$DSR_MARIADB_PORT" "$DEMO_USER" <<'PY'
import json, sys
pwfile, host, port, user = sys.argv[1:]
print(json.dumps({
    "engine": "mariadb", "host": host, "port": int(port), "username": user,
    "password": open(pwfile).read().strip(), "ssl": True,
    "note": "any extra key is kept",
}))
PY
}

# ---------------------------------------------------------------------------------------------
# Redis (ACL users; the stack's TLS port)

# redis_client USER PASSWORD ARGS...: redis-cli over verified TLS; the password goes in
# REDISCLI_AUTH. redis-cli exits with 0 even when the server refuses, so callers read the answer.
redis_client() {
    local user=$1 password=$2
    shift 2
    REDISCLI_AUTH=$password redis-cli --no-auth-warning --user "$user" -h "$DSR_REDIS_HOST" \
        -p "$DSR_REDIS_PORT" --tls --cacert "$DSR_TEST_CA" "$@" </dev/null
}

# The ACL password hash of the password in file $1: the lower-case hex of its SHA-256.
redis_acl_hash() {
    tr -d '\n' <"$1" | sha256sum | cut -d' ' -f1
}

# A user that may only ping and ask who it is: enough to log in and be seen.
redis_create_login() {
    local hash answer
    hash="$(redis_acl_hash "$1")"
    answer="$(redis_client "$DSR_REDIS_ADMIN_USER" "$DSR_REDIS_ADMIN_PASSWORD" \
        ACL SETUSER "$DEMO_USER" reset on "#$hash" -@all +ping '+acl|whoami' 2>&1)"
    [[ $answer == OK ]] || { printf 'ACL SETUSER %s: %s\n' "$DEMO_USER" "$answer" >&2; return 1; }
}

redis_drop_login() {
    redis_client "$DSR_REDIS_ADMIN_USER" "$DSR_REDIS_ADMIN_PASSWORD" ACL DELUSER "$DEMO_USER" >/dev/null
}

# redis_whoami USER PASSWORD: logs in and prints who the server says it is; fails otherwise.
redis_whoami() {
    local who
    who="$(redis_client "$1" "$2" ACL WHOAMI)"
    if [[ $who != "$1" ]]; then
        printf '%s\n' "$who" >&2
        return 1
    fi
    printf 'logged in as %s, over TLS (verified with the test CA)\n' "$who"
}

redis_login() {
    login_outcome 'WRONGPASS' redis_whoami "$DEMO_USER" "$(<"$1")"
}

redis_secret_json() {
    "$DSR_PYTHON" - "$1" "$DSR_REDIS_HOST" "$DSR_REDIS_PORT" "$DEMO_USER" "${DEMO_MASTER_ARN:-}" <<'PY'
import json, sys
pwfile, host, port, user, master = sys.argv[1:]
secret = {
    "engine": "redis", "host": host, "port": int(port), "username": user,
    "password": open(pwfile).read().strip(), "ssl": True,
    "rotation_strategy": "dual-password", "note": "any extra key is kept",
}
if master:
    secret["masterarn"] = master
print(json.dumps(secret))
PY
}

redis_master_json() {
    "$DSR_PYTHON" - "$DSR_REDIS_HOST" "$DSR_REDIS_PORT" "$DSR_REDIS_ADMIN_USER" <<'PY'
import json, os, sys
host, port, user = sys.argv[1:]
print(json.dumps({
    "engine": "redis", "host": host, "port": int(port), "username": user,
    "password": os.environ["DSR_REDIS_ADMIN_PASSWORD"], "ssl": True,
}))
PY
}
