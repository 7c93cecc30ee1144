#!/usr/bin/env bash
# Local test stack for db-secret-rotator, on 127.0.0.1 only:
#   moto server (Secrets Manager emulator)   :45123
#   PostgreSQL 15 cluster A, ssl=on          :55432
#   PostgreSQL 15 cluster B, ssl=off         :55433
#   MariaDB 10.11, TLS available             :53306
# plus a test CA, a leaf certificate for 127.0.0.1/localhost, and an unrelated second CA.
#
# Usage: scripts/stack.sh up | down [--purge] | env | status
#   eval "$(scripts/stack.sh env)"   exports the addresses, admin credentials and CA paths.
#
# All state lives in ${DSR_STACK_DIR:-<repo>/.stack}. Ports can be overridden with DSR_MOTO_PORT,
# DSR_PG_PORT, DSR_PG_PLAIN_PORT and DSR_MARIADB_PORT (use the same values for every subcommand).
# Missing software (postgresql-15, mariadb-server, moto) is installed with apt-get / pip.
# Must run as root: the databases run as the `postgres` and `mysql` system users.
set -euo pipefail

LOG_TAG=stack
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly HOST=127.0.0.1
readonly ADMIN_USER=dsr_admin
readonly MOTO_PORT=${DSR_MOTO_PORT:-45123}
readonly PG_PORT=${DSR_PG_PORT:-55432}
readonly PG_PLAIN_PORT=${DSR_PG_PLAIN_PORT:-55433}
readonly MARIADB_PORT=${DSR_MARIADB_PORT:-53306}
readonly PG_BIN=${DSR_PG_BIN:-/usr/lib/postgresql/15/bin}
readonly WAIT_SECONDS=${DSR_STACK_WAIT_SECONDS:-90}

STACK_DIR=${DSR_STACK_DIR:-$REPO_ROOT/.stack}
[[ $STACK_DIR == /* ]] || STACK_DIR="$PWD/$STACK_DIR"
readonly STACK_DIR
readonly TLS_DIR=$STACK_DIR/tls
readonly SECRETS_DIR=$STACK_DIR/secrets
readonly MOTO_DIR=$STACK_DIR/moto
readonly MOTO_PID=$MOTO_DIR/moto.pid
readonly MOTO_LOG=$MOTO_DIR/moto.log
readonly CA_PEM=$TLS_DIR/ca.pem
readonly OTHER_CA_PEM=$TLS_DIR/other-ca.pem
readonly PG_PW_FILE=$SECRETS_DIR/pg_admin_password
readonly MARIADB_PW_FILE=$SECRETS_DIR/mariadb_admin_password
readonly MARIADB_ADMIN_CNF=$SECRETS_DIR/mariadb-admin.cnf

# RUN_DIR holds the data of the services that run as `postgres` / `mysql`. It is $STACK_DIR/run,
# or, when those users cannot reach the state dir (e.g. a clone under /root, mode 0700) or the
# socket paths would be too long, a directory under /var/tmp that $STACK_DIR/run links to.
RUN_DIR=

MARIADBD=
MARIADB_CLIENT=
MARIADB_INSTALL_DB=

# ---------------------------------------------------------------------------------------------
# Installation

find_mariadb() {
    local d
    MARIADBD='' MARIADB_CLIENT='' MARIADB_INSTALL_DB=''
    for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
        [[ -z $MARIADBD && -x $d/mariadbd ]] && MARIADBD=$d/mariadbd
        [[ -z $MARIADB_CLIENT && -x $d/mariadb ]] && MARIADB_CLIENT=$d/mariadb
        [[ -z $MARIADB_INSTALL_DB && -x $d/mariadb-install-db ]] && MARIADB_INSTALL_DB=$d/mariadb-install-db
    done
    [[ -n $MARIADBD && -n $MARIADB_CLIENT && -n $MARIADB_INSTALL_DB ]]
}

moto_ok() {
    python3 - <<'PY' >/dev/null 2>&1
import sys
import boto3  # noqa: F401  (comes with moto; the demo uses it)
import moto
import moto.server  # noqa: F401  (needs the [server] extra)
sys.exit(0 if moto.__version__.split(".")[0] == "5" else 1)
PY
}

ensure_software() {
    local pkgs=()
    have openssl || pkgs+=(openssl)
    have flock || pkgs+=(util-linux)
    [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl && -x $PG_BIN/psql ]] || pkgs+=(postgresql-15)
    find_mariadb || pkgs+=(mariadb-server mariadb-client)
    have python3 || pkgs+=(python3 python3-pip)
    if ((${#pkgs[@]} > 0)); then
        apt_install "${pkgs[@]}"
    fi
    [[ -x $PG_BIN/initdb ]] || die "PostgreSQL 15 not found in $PG_BIN after install"
    find_mariadb || die "mariadbd / mariadb / mariadb-install-db not found after install"
    if ! moto_ok; then
        pip_install 'moto[server]>=5,<6'
        moto_ok || die "python3 cannot import moto 5 with its server extra after pip install"
    fi
    ensure_system_user postgres /var/lib/postgresql
    ensure_system_user mysql /nonexistent
}

ensure_system_user() {
    local user=$1 home=$2
    id -u "$user" >/dev/null 2>&1 && return 0
    log "creating system user $user"
    useradd --system --user-group --home-dir "$home" --no-create-home --shell /usr/sbin/nologin "$user"
}

# ---------------------------------------------------------------------------------------------
# State dir, TLS material, passwords

# Can USER reach (traverse) DIR?
user_can_reach() { runuser -u "$1" -- test -x "$2" 2>/dev/null; }

# Sets RUN_DIR. With "create", makes the directory (deciding where it goes on first use).
resolve_run_dir() {
    local link=$STACK_DIR/run
    if [[ -L $link ]]; then
        RUN_DIR="$(readlink -f "$link")"
        if [[ ${1:-} == create ]]; then install -d -m 0755 "$RUN_DIR"; fi
    elif [[ -d $link || ${1:-} != create ]]; then
        RUN_DIR=$link
    else
        local longest="$link/mariadb/mysqld.sock"
        if ((${#longest} < 100)) && user_can_reach postgres "$STACK_DIR" &&
            user_can_reach mysql "$STACK_DIR"; then
            RUN_DIR=$link
            install -d -m 0755 "$RUN_DIR"
        else
            local hash
            hash="$(printf '%s' "$STACK_DIR" | sha256sum | cut -c1-12)"
            RUN_DIR=/var/tmp/dsr-stack-$hash
            log "service data in $RUN_DIR ($STACK_DIR is not reachable by postgres/mysql or too long)"
            install -d -m 0755 "$RUN_DIR"
            ln -sfn "$RUN_DIR" "$link"
        fi
    fi
    [[ $RUN_DIR != *"'"* ]] || die "state dir path must not contain a single quote: $RUN_DIR"
}

# write_file OWNER MODE DEST: write stdin to DEST with that owner and mode.
write_file() {
    local owner=$1 mode=$2 dest=$3
    (umask 077 && cat >"$dest")
    chown "$owner:$owner" "$dest"
    chmod "$mode" "$dest"
}

gen_ca() {
    local name=$1 cn=$2 cnf
    cnf="$(mktemp)"
    cat >"$cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = $cn
O = db-secret-rotator tests
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    (umask 077 && openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -config "$cnf" -keyout "$TLS_DIR/$name.key" -out "$TLS_DIR/$name.pem" 2>/dev/null)
    chmod 0644 "$TLS_DIR/$name.pem"
    rm -f "$cnf"
}

gen_leaf() {
    local ext csr
    ext="$(mktemp)"
    csr="$(mktemp)"
    cat >"$ext" <<'EOF'
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
    (umask 077 && openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
        -keyout "$TLS_DIR/server.key" -out "$csr" 2>/dev/null)
    openssl x509 -req -sha256 -days 825 -in "$csr" -CA "$CA_PEM" -CAkey "$TLS_DIR/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -extfile "$ext" -extensions v3_leaf \
        -out "$TLS_DIR/server.pem" 2>/dev/null
    chmod 0644 "$TLS_DIR/server.pem"
    rm -f "$ext" "$csr"
}

leaf_ok() {
    [[ -s $TLS_DIR/server.pem && -s $TLS_DIR/server.key ]] &&
        openssl verify -CAfile "$CA_PEM" "$TLS_DIR/server.pem" >/dev/null 2>&1 &&
        openssl x509 -checkend 86400 -noout -in "$TLS_DIR/server.pem" >/dev/null 2>&1
}

ensure_tls() {
    install -d -m 0755 "$TLS_DIR"
    if [[ ! -s $CA_PEM || ! -s $TLS_DIR/ca.key ]]; then
        log "generating test CA"
        gen_ca ca "db-secret-rotator test CA"
        rm -f "$TLS_DIR/server.pem"
    fi
    if [[ ! -s $OTHER_CA_PEM ]]; then
        log "generating the unrelated CA (other-ca.pem)"
        gen_ca other-ca "db-secret-rotator unrelated CA"
    fi
    if ! leaf_ok; then
        log "generating server certificate (IP:127.0.0.1, DNS:localhost)"
        gen_leaf
        leaf_ok || die "generated server certificate does not verify against $CA_PEM"
    fi
}

ensure_password() {
    local file=$1
    [[ -s $file ]] && return 0
    (umask 077 && openssl rand -hex 24 >"$file")
}

read_password() {
    [[ -s $1 ]] || die "no password in $1: run 'scripts/stack.sh up' first"
    tr -d '\n' <"$1"
}

# ---------------------------------------------------------------------------------------------
# moto

moto_running() { pid_alive "$MOTO_PID" moto; }

moto_start() {
    mkdir -p "$MOTO_DIR"
    if moto_running; then
        log "moto already running (pid $(pid_of "$MOTO_PID"))"
        return 0
    fi
    if moto_answers >/dev/null 2>&1; then
        die "something else already answers on $HOST:$MOTO_PORT (set DSR_MOTO_PORT)"
    fi
    log "starting moto on $HOST:$MOTO_PORT"
    (cd / && exec setsid python3 -m moto.server -H "$HOST" -p "$MOTO_PORT" \
        >>"$MOTO_LOG" 2>&1 </dev/null 9>&-) &
    echo $! >"$MOTO_PID"
}

moto_answers() {
    python3 - "http://$HOST:$MOTO_PORT/moto-api/" <<'PY'
import sys
import urllib.error
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1], timeout=2).read()
except urllib.error.HTTPError:
    pass  # any HTTP answer means the server is up
PY
}

moto_wait() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    until moto_answers >/dev/null 2>&1; do
        if ! moto_running || ((SECONDS >= deadline)); then
            log_tail "$MOTO_LOG"
            die "moto did not start on $HOST:$MOTO_PORT"
        fi
        sleep 0.25
    done
}

moto_stop() { kill_pidfile "$MOTO_PID" moto moto; }

# ---------------------------------------------------------------------------------------------
# PostgreSQL

# fd 9 is the stack lock: long-lived children must not inherit it.
as_postgres() { (cd / && runuser -u postgres -- "$@" 9>&-); }

pg_running() {
    local data=$RUN_DIR/$1/data
    [[ -s $data/postmaster.pid ]] && id -u postgres >/dev/null 2>&1 &&
        as_postgres "$PG_BIN/pg_ctl" status -D "$data" >/dev/null 2>&1
}

# pg_up NAME PORT SSL
pg_up() {
    local name=$1 port=$2 ssl=$3
    local dir=$RUN_DIR/$name
    local data=$dir/data log=$dir/postgres.log
    install -d -o postgres -g postgres -m 0700 "$dir"
    if [[ ! -s $data/PG_VERSION ]]; then
        if [[ -d $data ]] && [[ -n "$(ls -A "$data")" ]]; then
            die "$data exists but is not a cluster: run 'scripts/stack.sh down --purge'"
        fi
        log "initdb $name"
        read_password "$PG_PW_FILE" | write_file postgres 0600 "$dir/.pwfile"
        if ! as_postgres "$PG_BIN/initdb" -D "$data" -U "$ADMIN_USER" --auth=scram-sha-256 \
            --pwfile="$dir/.pwfile" -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
            rm -f "$dir/.pwfile"
            log_tail "$dir/initdb.log"
            die "initdb failed for $name"
        fi
        rm -f "$dir/.pwfile"
    fi

    # TLS files owned by postgres (the server refuses a key readable by others).
    write_file postgres 0600 "$dir/server.key" <"$TLS_DIR/server.key"
    write_file postgres 0644 "$dir/server.pem" <"$TLS_DIR/server.pem"

    write_file postgres 0600 "$data/dsr.conf" <<EOF
# Written by scripts/stack.sh on every 'up'; included last from postgresql.conf.
listen_addresses = '$HOST'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
password_encryption = 'scram-sha-256'
ssl = $ssl
ssl_cert_file = '$dir/server.pem'
ssl_key_file = '$dir/server.key'
ssl_min_protocol_version = 'TLSv1.2'
shared_buffers = 64MB
# Throwaway test cluster: durability is not needed.
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    grep -qx "include 'dsr.conf'" "$data/postgresql.conf" ||
        echo "include 'dsr.conf'" >>"$data/postgresql.conf"

    # Password (SCRAM) authentication only; never trust/md5/peer.
    write_file postgres 0600 "$data/pg_hba.conf" <<EOF
# Written by scripts/stack.sh. SCRAM only: TLS and plaintext both accepted from 127.0.0.1.
# TYPE   DATABASE  USER  ADDRESS        METHOD
local    all       all                  scram-sha-256
hostssl  all       all   127.0.0.1/32   scram-sha-256
host     all       all   127.0.0.1/32   scram-sha-256
EOF

    if pg_running "$name"; then
        log "postgres $name already running (pid $(pid_of "$data/postmaster.pid"))"
        return 0
    fi
    log "starting postgres $name on $HOST:$port (ssl=$ssl)"
    if ! as_postgres "$PG_BIN/pg_ctl" start -D "$data" -l "$log" -w -t "$WAIT_SECONDS" -s \
        >/dev/null 2>&1; then
        log_tail "$log"
        die "postgres $name did not start on $HOST:$port"
    fi
}

# pg_query PORT SSLMODE SQL: run SQL as the admin over TCP.
pg_query() {
    PGPASSWORD="$(read_password "$PG_PW_FILE")" PGCONNECT_TIMEOUT=5 \
        "$PG_BIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 \
        "host=$HOST port=$1 user=$ADMIN_USER dbname=postgres sslmode=$2 sslrootcert=$CA_PEM" \
        -c "$3"
}

pg_check() {
    local name=$1 port=$2 ssl=$3 log=$RUN_DIR/$1/postgres.log got
    if [[ $ssl == on ]]; then
        if ! wait_until "$WAIT_SECONDS" "postgres $name login" pg_query "$port" verify-full 'select 1'; then
            log_tail "$log"
            die "admin login over TLS (verify-full) failed on postgres $name"
        fi
        got="$(pg_query "$port" verify-full 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')"
        [[ $got == t ]] || die "postgres $name: session is not encrypted"
        pg_query "$port" disable 'select 1' >/dev/null ||
            die "postgres $name does not accept plaintext logins"
    else
        if ! wait_until "$WAIT_SECONDS" "postgres $name login" pg_query "$port" disable 'select 1'; then
            log_tail "$log"
            die "admin login failed on postgres $name"
        fi
        if pg_query "$port" require 'select 1' >/dev/null 2>&1; then
            die "postgres $name accepted TLS but should have ssl=off"
        fi
    fi
}

pg_stop() {
    local name=$1 data=$RUN_DIR/$1/data
    [[ -d $data ]] || return 0
    if pg_running "$name"; then
        log "stopping postgres $name (pid $(pid_of "$data/postmaster.pid"))"
        as_postgres "$PG_BIN/pg_ctl" stop -D "$data" -m fast -w -t 60 -s >/dev/null 2>&1 ||
            kill_pidfile "$data/postmaster.pid" "postgres $name" postgres
    fi
}

# ---------------------------------------------------------------------------------------------
# MariaDB

mariadb_paths() {
    MDB_DIR=$RUN_DIR/mariadb
    MDB_DATA=$MDB_DIR/data
    MDB_SOCK=$MDB_DIR/mysqld.sock
    MDB_PID=$MDB_DIR/mysqld.pid
    MDB_LOG=$MDB_DIR/error.log
    MDB_CNF=$MDB_DIR/my.cnf
}

mariadb_running() { mariadb_paths && pid_alive "$MDB_PID" mariadbd; }

mariadb_root_sql() {
    "$MARIADB_CLIENT" --no-defaults --protocol=SOCKET --socket="$MDB_SOCK" -uroot -N -B "$@"
}

mariadb_up() {
    mariadb_paths
    install -d -o mysql -g mysql -m 0700 "$MDB_DIR"
    write_file mysql 0600 "$MDB_DIR/server.key" <"$TLS_DIR/server.key"
    write_file mysql 0644 "$MDB_DIR/server.pem" <"$TLS_DIR/server.pem"
    write_file mysql 0644 "$MDB_DIR/ca.pem" <"$CA_PEM"
    write_file mysql 0600 "$MDB_CNF" <<EOF
# Written by scripts/stack.sh on every 'up'.
[mariadbd]
user = mysql
datadir = $MDB_DATA
socket = $MDB_SOCK
pid-file = $MDB_PID
log-error = $MDB_LOG
port = $MARIADB_PORT
bind-address = $HOST
skip-name-resolve
max_connections = 300
ssl-ca = $MDB_DIR/ca.pem
ssl-cert = $MDB_DIR/server.pem
ssl-key = $MDB_DIR/server.key
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
innodb_buffer_pool_size = 64M
innodb_flush_log_at_trx_commit = 2
performance_schema = OFF
EOF

    if mariadb_running; then
        log "mariadb already running (pid $(pid_of "$MDB_PID"))"
    else
        if [[ ! -d $MDB_DATA/mysql ]]; then
            log "mariadb-install-db"
            install -d -o mysql -g mysql -m 0700 "$MDB_DATA"
            if ! (cd / && "$MARIADB_INSTALL_DB" --defaults-file="$MDB_CNF" --user=mysql \
                --skip-test-db --auth-root-authentication-method=socket \
                >"$MDB_DIR/install-db.log" 2>&1 9>&-); then
                log_tail "$MDB_DIR/install-db.log"
                log_tail "$MDB_LOG" 10
                rm -rf "$MDB_DATA"
                die "mariadb-install-db failed"
            fi
        fi
        log "starting mariadb on $HOST:$MARIADB_PORT"
        rm -f "$MDB_PID"
        (cd / && exec setsid "$MARIADBD" --defaults-file="$MDB_CNF" \
            >>"$MDB_DIR/stdout.log" 2>&1 </dev/null 9>&-) &
        local pid=$! deadline=$((SECONDS + WAIT_SECONDS))
        until [[ -S $MDB_SOCK ]] && mariadb_root_sql -e 'select 1' >/dev/null 2>&1; do
            if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
                log_tail "$MDB_LOG"
                log_tail "$MDB_DIR/stdout.log" 10
                die "mariadb did not start on $HOST:$MARIADB_PORT"
            fi
            sleep 0.25
        done
        [[ -s $MDB_PID ]] || echo "$pid" >"$MDB_PID"
    fi

    # Admin account (idempotent), no anonymous accounts.
    local pw host
    pw="$(read_password "$MARIADB_PW_FILE")"
    {
        for host in '%' '127.0.0.1' 'localhost'; do
            printf "CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s';\n" "$ADMIN_USER" "$host" "$pw"
            printf "ALTER USER '%s'@'%s' IDENTIFIED BY '%s';\n" "$ADMIN_USER" "$host" "$pw"
            printf "GRANT ALL PRIVILEGES ON *.* TO '%s'@'%s' WITH GRANT OPTION;\n" "$ADMIN_USER" "$host"
        done
        mariadb_root_sql -e "SELECT CONCAT('DROP USER IF EXISTS ''''@''', host, ''';') FROM mysql.user WHERE user = ''"
        echo "FLUSH PRIVILEGES;"
    } | mariadb_root_sql || die "could not create the mariadb admin account"

    write_file root 0600 "$MARIADB_ADMIN_CNF" <<EOF
[client]
user = $ADMIN_USER
password = $pw
host = $HOST
port = $MARIADB_PORT
protocol = TCP
ssl-ca = $CA_PEM
ssl-verify-server-cert
EOF
}

mariadb_check() {
    local got
    if ! wait_until "$WAIT_SECONDS" "mariadb login" \
        "$MARIADB_CLIENT" --defaults-file="$MARIADB_ADMIN_CNF" -e 'select 1'; then
        log_tail "$MDB_LOG"
        die "mariadb admin login over TLS failed"
    fi
    got="$("$MARIADB_CLIENT" --defaults-file="$MARIADB_ADMIN_CNF" -N -B \
        -e "SHOW SESSION STATUS LIKE 'Ssl_version'" | cut -f2)"
    [[ $got == TLS* ]] || die "mariadb session is not encrypted (Ssl_version='$got')"
    local user
    for user in root ''; do
        if "$MARIADB_CLIENT" --no-defaults --protocol=TCP -h "$HOST" -P "$MARIADB_PORT" \
            -u "$user" -e 'select 1' </dev/null >/dev/null 2>&1; then
            die "mariadb lets '$user' log in over TCP without a password"
        fi
    done
}

mariadb_stop() {
    mariadb_paths
    kill_pidfile "$MDB_PID" mariadb mariadbd
}

# ---------------------------------------------------------------------------------------------
# Subcommands

lock_stack() {
    mkdir -p "$STACK_DIR"
    exec 9>"$STACK_DIR/.lock"
    flock -w 600 9 || die "another scripts/stack.sh holds $STACK_DIR/.lock"
}

cmd_up() {
    local start=$SECONDS
    [[ $(id -u) -eq 0 ]] || die "run as root (the databases run as the postgres and mysql users)"
    ensure_software
    lock_stack
    chmod 0755 "$STACK_DIR"
    install -d -m 0700 "$SECRETS_DIR"
    ensure_tls
    ensure_password "$PG_PW_FILE"
    ensure_password "$MARIADB_PW_FILE"
    resolve_run_dir create

    moto_start
    pg_up pg-a "$PG_PORT" on
    pg_up pg-b "$PG_PLAIN_PORT" off
    mariadb_up
    moto_wait
    pg_check pg-a "$PG_PORT" on
    pg_check pg-b "$PG_PLAIN_PORT" off
    mariadb_check

    cat <<EOF
stack up in $((SECONDS - start))s (state: $STACK_DIR)
  moto (Secrets Manager)  http://$HOST:$MOTO_PORT
  postgres A (TLS)        $HOST:$PG_PORT        admin $ADMIN_USER
  postgres B (no TLS)     $HOST:$PG_PLAIN_PORT        admin $ADMIN_USER
  mariadb (TLS)           $HOST:$MARIADB_PORT        admin $ADMIN_USER
  test CA                 $CA_PEM
  unrelated CA            $OTHER_CA_PEM
use: eval "\$(scripts/stack.sh env)"
EOF
}

cmd_down() {
    local purge=0
    case "${1:-}" in
        --purge) purge=1 ;;
        '') ;;
        *) die "usage: scripts/stack.sh down [--purge]" ;;
    esac
    if [[ ! -d $STACK_DIR ]]; then
        log "nothing to stop ($STACK_DIR does not exist)"
        return 0
    fi
    lock_stack
    resolve_run_dir
    find_mariadb || true
    moto_stop
    pg_stop pg-a
    pg_stop pg-b
    mariadb_stop
    if ((purge)); then
        log "removing $STACK_DIR"
        if [[ -L $STACK_DIR/run && $RUN_DIR == /var/tmp/dsr-stack-* ]]; then
            rm -rf "$RUN_DIR"
        fi
        rm -rf "$STACK_DIR"
    fi
    log "stack down"
}

cmd_env() {
    [[ -s $PG_PW_FILE && -s $MARIADB_PW_FILE ]] || die "no stack in $STACK_DIR: run 'scripts/stack.sh up' first"
    local kv
    for kv in \
        "AWS_ENDPOINT_URL_SECRETS_MANAGER=http://$HOST:$MOTO_PORT" \
        "AWS_REGION=us-east-1" \
        "AWS_ACCESS_KEY_ID=testing" \
        "AWS_SECRET_ACCESS_KEY=testing" \
        "DSR_PG_HOST=$HOST" \
        "DSR_PG_PORT=$PG_PORT" \
        "DSR_PG_PLAIN_PORT=$PG_PLAIN_PORT" \
        "DSR_PG_ADMIN_USER=$ADMIN_USER" \
        "DSR_PG_ADMIN_PASSWORD=$(read_password "$PG_PW_FILE")" \
        "DSR_MARIADB_HOST=$HOST" \
        "DSR_MARIADB_PORT=$MARIADB_PORT" \
        "DSR_MARIADB_ADMIN_USER=$ADMIN_USER" \
        "DSR_MARIADB_ADMIN_PASSWORD=$(read_password "$MARIADB_PW_FILE")" \
        "DSR_TEST_CA=$CA_PEM" \
        "DSR_OTHER_CA=$OTHER_CA_PEM"; do
        printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
    done
}

cmd_status() {
    local down=0
    resolve_run_dir
    printf 'state dir: %s\n' "$STACK_DIR"
    if moto_running; then
        printf '  %-11s running  pid %-7s http://%s:%s\n' moto "$(pid_of "$MOTO_PID")" "$HOST" "$MOTO_PORT"
    else
        printf '  %-11s stopped\n' moto
        down=1
    fi
    local name port
    for name in pg-a pg-b; do
        port=$PG_PORT
        [[ $name == pg-b ]] && port=$PG_PLAIN_PORT
        if pg_running "$name"; then
            printf '  %-11s running  pid %-7s %s:%s\n' "postgres-${name#pg-}" \
                "$(pid_of "$RUN_DIR/$name/data/postmaster.pid")" "$HOST" "$port"
        else
            printf '  %-11s stopped\n' "postgres-${name#pg-}"
            down=1
        fi
    done
    if mariadb_running; then
        printf '  %-11s running  pid %-7s %s:%s\n' mariadb "$(pid_of "$MDB_PID")" "$HOST" "$MARIADB_PORT"
    else
        printf '  %-11s stopped\n' mariadb
        down=1
    fi
    return "$down"
}

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        env) cmd_env "$@" ;;
        status) cmd_status "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
