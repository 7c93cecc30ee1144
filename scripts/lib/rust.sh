# shellcheck shell=bash
# The Rust toolchain check that every script runs before it starts anything (sourced by common.sh).
#
# Without cargo, the scripts install Rust with rustup, the Rust project's installer, when its site
# answers (into ~/.cargo, without touching shell profiles). When it does not (no network, or a
# network that reaches package registries only: rustup is not in any of them), they stop at once
# and say what to install.

# The minimum Rust version: `rust-version` in Cargo.toml.
rust_min_version() {
    sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$REPO_ROOT/Cargo.toml" | head -n1
}

# version_at_least HAVE WANT: dotted versions, numerically.
version_at_least() {
    local IFS=.
    # shellcheck disable=SC2206
    local have=($1) want=($2) i
    for ((i = 0; i < 3; i++)); do
        ((${have[i]:-0} > ${want[i]:-0})) && return 0
        ((${have[i]:-0} < ${want[i]:-0})) && return 1
    done
    return 0
}

rust_install_hint() {
    local min=$1
    cat <<EOF
Install Rust $min or newer with rustup, the Rust project's installer (https://rustup.rs):
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . "\$HOME/.cargo/env"
then run this command again. On Debian 12 without access to rustup, Debian's own packages
provide a recent enough Rust too:
    apt-get install cargo-web rustc-web rustfmt-web rust-web-clippy
EOF
}

# ensure_rust: cargo and rustc on PATH, at least `rust-version`. A rustup install whose
# ~/.cargo/bin is not on PATH yet (a shell opened before the install) is picked up.
ensure_rust() {
    local min
    min="$(rust_min_version)"
    [[ -n $min ]] || die "no rust-version in $REPO_ROOT/Cargo.toml"
    if ! have cargo && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
        PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
        export PATH
    fi
    if ! have cargo || ! have rustc; then
        install_rustup "$min"
    fi
    if ! have cargo || ! have rustc; then
        printf '[%s] ERROR: Rust is not installed: cargo and rustc are not on PATH.\n' "${LOG_TAG:-dsr}" >&2
        rust_install_hint "$min" >&2
        exit 1
    fi
    local version
    version="$(rustc --version 2>/dev/null | awk '{print $2}')"
    version=${version%%-*}
    if [[ -z $version ]] || ! version_at_least "$version" "$min"; then
        printf '[%s] ERROR: this project needs Rust %s or newer; rustc on PATH is %s.\n' \
            "${LOG_TAG:-dsr}" "$min" "${version:-unknown}" >&2
        printf 'With rustup: rustup update stable\n' >&2
        exit 1
    fi
}

# install_rustup MIN: fetch rustup's installer and install the stable toolchain, if its site answers.
# DSR_RUSTUP_INIT_URL replaces the installer's address (the tests point it at a closed port).
install_rustup() {
    local script url=${DSR_RUSTUP_INIT_URL:-https://sh.rustup.rs}
    script="$(mktemp)"
    if ! have curl || ! curl -fsS --connect-timeout 5 --max-time 60 "$url" -o "$script" 2>/dev/null; then
        rm -f "$script"
        log "rustup's installer cannot be fetched from $url"
        return 0
    fi
    log "installing Rust (stable, at least $1) with rustup into ${CARGO_HOME:-$HOME/.cargo}"
    sh "$script" -y --no-modify-path --profile minimal --component rustfmt,clippy >&2 ||
        die "the rustup installer failed"
    rm -f "$script"
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    export PATH
}

# ensure_rust_component TOOL COMPONENT: `cargo TOOL` works, adding the rustup component if needed.
ensure_rust_component() {
    local tool=$1 component=$2
    cargo "$tool" --version >/dev/null 2>&1 && return 0
    have rustup || die "cargo $tool is missing and there is no rustup to add it: install $component (Debian: the ${component}-web or rust-web-clippy package)"
    log "rustup component add $component"
    rustup component add "$component" >&2
}
