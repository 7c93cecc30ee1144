# shellcheck shell=bash disable=SC2153  # HOST, the ports and paths are set by stack.sh
# MariaDB for scripts/stack.sh (sourced by it): TLS available, a password-protected admin account,
# root only over the local socket, no anonymous accounts, the ed25519 authentication plugin.

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

    # Admin account (idempotent), no anonymous accounts, and the ed25519 authentication plugin
    # (the dual-password tests rotate an ed25519 account).
    local pw host
    pw="$(read_password "$MARIADB_PW_FILE")"
    {
        echo "INSTALL PLUGIN IF NOT EXISTS ed25519 SONAME 'auth_ed25519';"
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
