# shellcheck shell=bash disable=SC2153  # HOST, the ports and paths are set by stack.sh
# PostgreSQL clusters for scripts/stack.sh (sourced by it), SCRAM password authentication only:
# pg-a (PostgreSQL 15, TLS) and pg-b (15, no TLS) from Debian's packages, and pg-16, pg-17, pg-18
# (TLS) from the npm package pg_dist.sh installs. Each NAME is a directory of $RUN_DIR.

# fd 9 is the stack lock: long-lived children must not inherit it.
as_postgres() { (cd / && runuser -u postgres -- "$@" 9>&-); }

# pg_bin NAME: the directory of the cluster's initdb, pg_ctl and postgres.
pg_bin() {
    case $1 in
        pg-a | pg-b) printf '%s' "$PG_BIN" ;;
        pg-*) printf '%s/bin' "$(pg_dist_dir "${1#pg-}")" ;;
        *) die "no such PostgreSQL cluster: $1" ;;
    esac
}

pg_running() {
    local data=$RUN_DIR/$1/data bin
    bin="$(pg_bin "$1")"
    [[ -s $data/postmaster.pid ]] && id -u postgres >/dev/null 2>&1 || return 1
    if [[ -x $bin/pg_ctl ]]; then
        as_postgres "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1
    else
        pid_alive "$data/postmaster.pid" postgres
    fi
}

# pg_up NAME PORT SSL
pg_up() {
    local name=$1 port=$2 ssl=$3 bin
    local dir=$RUN_DIR/$name
    local data=$dir/data log=$dir/postgres.log
    bin="$(pg_bin "$name")"
    install -d -o postgres -g postgres -m 0700 "$dir"
    if [[ ! -s $data/PG_VERSION ]]; then
        if [[ -d $data ]] && [[ -n "$(ls -A "$data")" ]]; then
            die "$data exists but is not a cluster: run 'scripts/stack.sh down --purge'"
        fi
        log "initdb $name"
        read_password "$PG_PW_FILE" | write_file postgres 0600 "$dir/.pwfile"
        if ! as_postgres "$bin/initdb" -D "$data" -U "$ADMIN_USER" --auth=scram-sha-256 \
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
    if ! as_postgres "$bin/pg_ctl" start -D "$data" -l "$log" -w -t "$WAIT_SECONDS" -s \
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
        if [[ $name == pg-[0-9]* ]]; then
            got="$(pg_query "$port" verify-full "select current_setting('server_version_num')::int / 10000")"
            [[ $got == "${name#pg-}" ]] || die "postgres $name on $HOST:$port is PostgreSQL $got"
        fi
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
    local name=$1 data=$RUN_DIR/$1/data bin
    [[ -d $data ]] || return 0
    bin="$(pg_bin "$name")"
    if pg_running "$name"; then
        log "stopping postgres $name (pid $(pid_of "$data/postmaster.pid"))"
        as_postgres "$bin/pg_ctl" stop -D "$data" -m fast -w -t 60 -s >/dev/null 2>&1 ||
            kill_pidfile "$data/postmaster.pid" "postgres $name" postgres
    fi
}
