# shellcheck shell=bash disable=SC2153  # HOST, the ports and paths are set by stack.sh
# PostgreSQL 15 clusters for scripts/stack.sh (sourced by it): SCRAM password authentication only,
# one cluster with TLS and one without.

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
