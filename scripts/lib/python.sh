# shellcheck shell=bash
# Python tools, each in a virtualenv the scripts create under $STACK_DIR (sourced by common.sh).
# Nothing is ever installed into the system's Python: Debian's refuses it (PEP 668), and a root
# pip install would mix with the distribution's packages.
#
#   $STACK_DIR/venv       moto (the Secrets Manager emulator, with boto3) and cargo-lambda
#   $STACK_DIR/venv-sam   cfn-lint and the AWS SAM CLI (which pin their own boto3 range)
#   $STACK_DIR/venv-awscli  AWS CLI 1.x, for the test of docs/deployment.md's commands
#   $STACK_DIR/bin        links to the commands a user may want: cargo-lambda, zig (its linker,
#                         from the ziglang wheel), sam, cfn-lint
#
# The virtualenvs are made from $PYTHON (default: python3 on PATH). On Debian, whose python3
# ships venv without ensurepip, python3-venv is installed with apt-get when it is missing.

TOOLS_VENV=$STACK_DIR/venv
SAM_VENV=$STACK_DIR/venv-sam
TOOLS_BIN=$STACK_DIR/bin
# Major versions pinned; pip resolves the rest.
MOTO_REQUIREMENT='moto[server]>=5.2.6,<6'
CARGO_LAMBDA_REQUIREMENT='cargo-lambda>=1,<2'
SAM_REQUIREMENTS=('cfn-lint>=1,<2' 'aws-sam-cli>=1,<2')
AWSCLI_VENV=$STACK_DIR/venv-awscli
AWSCLI_REQUIREMENT='awscli>=1,<2'

# ensure_venv DIR: a working virtualenv with pip at DIR.
ensure_venv() {
    local dir=$1 py=${PYTHON:-python3}
    [[ -x $dir/bin/python ]] && "$dir/bin/python" -m pip --version >/dev/null 2>&1 && return 0
    have "$py" || die "$py not found: install Python 3 (on Debian: apt-get install python3) or set PYTHON"
    rm -rf "$dir"
    log "creating the virtualenv $dir ($(command -v "$py"))"
    if "$py" -m venv "$dir" >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$dir"
    # Debian's interpreter without its venv package (ensurepip is missing).
    local version
    version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [[ "$(readlink -f "$(command -v "$py")")" == /usr/bin/* ]] && have apt-get; then
        apt_install "python$version-venv"
        "$py" -m venv "$dir" >/dev/null 2>&1 && return 0
        rm -rf "$dir"
    fi
    die "cannot create a virtualenv with $py (Python $version): on Debian, apt-get install python3-venv"
}

# venv_install DIR REQUIREMENT...: pip install into the virtualenv DIR, once per requirement set.
venv_install() {
    local dir=$1
    shift
    local stamp=$dir/.dsr-installed
    if [[ -x $dir/bin/python ]] && grep -qxF -- "$*" "$stamp" 2>/dev/null; then
        return 0
    fi
    ensure_venv "$dir"
    log "pip install $* (into $dir)"
    local out
    out="$(mktemp)"
    if ! "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >"$out" 2>&1; then
        log_tail "$out" 40
        rm -f "$out"
        die "pip install $* failed"
    fi
    rm -f "$out"
    printf '%s\n' "$*" >>"$stamp"
}

# link_tools DIR TOOL...: link commands of the virtualenv DIR into $TOOLS_BIN, which goes on PATH.
link_tools() {
    local dir=$1 tool
    shift
    mkdir -p "$TOOLS_BIN"
    for tool in "$@"; do
        [[ -x $dir/bin/$tool ]] || die "$dir/bin/$tool is missing"
        ln -sfn "$dir/bin/$tool" "$TOOLS_BIN/$tool"
    done
    tools_on_path
}

tools_on_path() {
    [[ :$PATH: == *":$TOOLS_BIN:"* ]] || PATH="$TOOLS_BIN:$PATH"
    export PATH
}

# The interpreter with boto3 and moto, for the scripts' own Python (demo_secrets.py).
stack_python() { printf '%s\n' "$TOOLS_VENV/bin/python"; }

moto_installed() {
    "$TOOLS_VENV/bin/python" - <<'PY' >/dev/null 2>&1
import sys
import boto3  # noqa: F401  (comes with moto; the demo uses it)
import moto
import moto.server  # noqa: F401  (needs the [server] extra)
sys.exit(0 if moto.__version__.split(".")[0] == "5" else 1)
PY
}

ensure_moto() {
    moto_installed && return 0
    venv_install "$TOOLS_VENV" "$MOTO_REQUIREMENT"
    moto_installed || die "the virtualenv $TOOLS_VENV cannot import moto 5 with its server extra"
}

# cargo-lambda, from PyPI (a binary wheel that brings Zig, its linker), into the tools virtualenv.
ensure_cargo_lambda() {
    tools_on_path
    if ! cargo lambda --version >/dev/null 2>&1; then
        venv_install "$TOOLS_VENV" "$CARGO_LAMBDA_REQUIREMENT"
        link_tools "$TOOLS_VENV" cargo-lambda
        cargo lambda --version >/dev/null 2>&1 || die "cargo lambda does not run after installing it into $TOOLS_VENV"
    fi
    ensure_zig
}

# zig on PATH, which `cargo lambda build` links with. The ziglang wheel that comes with
# cargo-lambda has the executable inside its Python package, not in the virtualenv's bin/, and
# cargo-lambda looks for `zig` on PATH (or runs `python3 -m ziglang` with whichever python3 is
# first on PATH, not the virtualenv's): without this link every build stops at "Zig is not
# installed in your system".
ensure_zig() {
    tools_on_path
    zig version >/dev/null 2>&1 && return 0
    local dir
    if ! dir="$(ziglang_dir)"; then
        venv_install "$TOOLS_VENV" "$CARGO_LAMBDA_REQUIREMENT"
        dir="$(ziglang_dir)" || die "the ziglang package is missing from $TOOLS_VENV: rm -rf $TOOLS_VENV, then try again"
    fi
    [[ -x $dir/zig ]] || die "$dir/zig is missing: rm -rf $TOOLS_VENV, then try again"
    mkdir -p "$TOOLS_BIN"
    ln -sfn "$dir/zig" "$TOOLS_BIN/zig"
    zig version >/dev/null 2>&1 || die "zig does not run from $TOOLS_BIN/zig"
}

# Where the tools virtualenv's ziglang package is.
ziglang_dir() {
    "$TOOLS_VENV/bin/python" -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))' 2>/dev/null
}

ensure_sam_tools() {
    if [[ -x $SAM_VENV/bin/sam && -x $SAM_VENV/bin/cfn-lint ]] &&
        grep -qxF -- "${SAM_REQUIREMENTS[*]}" "$SAM_VENV/.dsr-installed" 2>/dev/null; then
        link_tools "$SAM_VENV" sam cfn-lint
        return 0
    fi
    venv_install "$SAM_VENV" "${SAM_REQUIREMENTS[@]}"
    link_tools "$SAM_VENV" sam cfn-lint
}

ensure_awscli() {
    venv_install "$AWSCLI_VENV" "$AWSCLI_REQUIREMENT"
}
