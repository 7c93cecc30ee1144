# shellcheck shell=bash disable=SC2153  # HOST, the ports and paths are set by stack.sh
# Redis 7 for scripts/stack.sh (sourced by it): Debian's redis-server on loopback, TLS on one port
# and plaintext on another, users from an ACL file (the default user off, a password-protected
# admin), no data persistence. The ACL file is written afresh at every start, so users the tests
# saved into it (ACL SAVE) last only until the next restart.

find_redis() {
    REDIS_SERVER='' REDIS_CLI=''
    local d
    for d in /usr/bin /usr/local/bin /usr/sbin; do
        [[ -z $REDIS_SERVER && -x $d/redis-server ]] && REDIS_SERVER=$d/redis-server
        [[ -z $REDIS_CLI && -x $d/redis-cli ]] && REDIS_CLI=$d/redis-cli
    done
    [[ -n $REDIS_SERVER && -n $REDIS_CLI ]]
}

redis_paths() {
    RDS_DIR=$RUN_DIR/redis
    RDS_CONF=$RDS_DIR/redis.conf
    RDS_ACL=$RDS_DIR/users.acl
    RDS_PID=$RDS_DIR/redis.pid
    RDS_LOG=$RDS_DIR/redis.log
}

redis_running() { redis_paths && pid_alive "$RDS_PID" redis-server; }

# redis_cli PORT TLS ARGS...: redis-cli as the admin; TLS (yes/no) verifies the test CA. The
# password travels in the environment, never on the command line.
redis_cli() {
    local port=$1 tls=$2
    shift 2
    local args=(--no-auth-warning --user "$ADMIN_USER" -h "$HOST" -p "$port")
    [[ $tls == yes ]] && args+=(--tls --cacert "$CA_PEM")
    REDISCLI_AUTH="$(read_password "$REDIS_PW_FILE")" "$REDIS_CLI" "${args[@]}" "$@" </dev/null
}

redis_up() {
    redis_paths
    install -d -o redis -g redis -m 0700 "$RDS_DIR"
    write_file redis 0600 "$RDS_DIR/server.key" <"$TLS_DIR/server.key"
    write_file redis 0644 "$RDS_DIR/server.pem" <"$TLS_DIR/server.pem"
    write_file redis 0644 "$RDS_DIR/ca.pem" <"$CA_PEM"
    if redis_running; then
        log "redis already running (pid $(pid_of "$RDS_PID"))"
        return 0
    fi
    write_file redis 0600 "$RDS_CONF" <<EOF
# Written by scripts/stack.sh on every start.
bind $HOST
protected-mode yes
port $REDIS_PLAIN_PORT
tls-port $REDIS_PORT
tls-cert-file $RDS_DIR/server.pem
tls-key-file $RDS_DIR/server.key
tls-ca-cert-file $RDS_DIR/ca.pem
tls-auth-clients no
aclfile $RDS_ACL
dir $RDS_DIR
pidfile $RDS_PID
logfile $RDS_LOG
daemonize no
save ""
appendonly no
maxclients 1000
EOF
    # The admin's password is stored as its SHA-256, as ACL SAVE itself writes passwords.
    local hash
    hash="$(read_password "$REDIS_PW_FILE" | sha256sum | cut -d' ' -f1)"
    write_file redis 0600 "$RDS_ACL" <<EOF
user default off resetpass -@all
user $ADMIN_USER on #$hash ~* &* +@all
EOF
    log "starting redis on $HOST:$REDIS_PORT (TLS) and $HOST:$REDIS_PLAIN_PORT"
    rm -f "$RDS_PID"
    (cd / && exec setsid runuser -u redis -- "$REDIS_SERVER" "$RDS_CONF" \
        >>"$RDS_DIR/stdout.log" 2>&1 </dev/null 9>&-) &
    local pid=$! deadline=$((SECONDS + WAIT_SECONDS))
    until [[ -s $RDS_PID ]] && redis_cli "$REDIS_PLAIN_PORT" no ping >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            log_tail "$RDS_LOG"
            log_tail "$RDS_DIR/stdout.log" 10
            die "redis did not start on $HOST:$REDIS_PORT / $HOST:$REDIS_PLAIN_PORT"
        fi
        sleep 0.25
    done
}

redis_check() {
    if ! wait_until "$WAIT_SECONDS" "redis login over TLS" redis_cli "$REDIS_PORT" yes ping; then
        log_tail "$RDS_LOG"
        die "redis admin login over TLS (verified with the test CA) failed"
    fi
    [[ "$(redis_cli "$REDIS_PLAIN_PORT" no ping)" == PONG ]] ||
        die "redis admin login over plaintext failed"
    [[ "$(redis_cli "$REDIS_PORT" yes config get aclfile | sed -n 2p)" == "$RDS_ACL" ]] ||
        die "redis does not use its ACL file $RDS_ACL"
    # Nobody gets in without a password: the default user is off.
    local answer
    answer="$("$REDIS_CLI" -h "$HOST" -p "$REDIS_PLAIN_PORT" ping </dev/null 2>&1 || true)"
    [[ $answer == *NOAUTH* ]] || die "redis answers without authentication ($answer)"
}

redis_stop() {
    redis_paths
    kill_pidfile "$RDS_PID" redis redis-server
}
