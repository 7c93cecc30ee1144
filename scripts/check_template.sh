#!/usr/bin/env bash
# Checks template.yaml and examples/*.yaml, offline and without AWS credentials:
#   1. cfn-lint (warnings count as failures),
#   2. `sam validate` (the SAM transform) and `sam validate --lint`,
#   3. scripts/template_test.py --self-test (the permissions and shape, and proof that the test
#      rejects a list of harmful edits).
# cfn-lint and the SAM CLI live in a virtualenv under ${DSR_STACK_DIR:-<repo>/.stack}/venv-sam,
# created and filled from PyPI on first use (about a minute), reused afterwards.
#
# Usage: scripts/check_template.sh        (PYTHON=python3.11 to choose the interpreter)
# Exit status: 0 when every check passed, 1 otherwise.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
stack_dir=${DSR_STACK_DIR:-$repo/.stack}
mkdir -p "$stack_dir"
stack_dir=$(cd "$stack_dir" && pwd)
venv=$stack_dir/venv-sam
py=${PYTHON:-python3}
# Major versions pinned; pip resolves the rest (aws-sam-cli pins its own cfn-lint range).
requirements=("cfn-lint>=1,<2" "aws-sam-cli>=1,<2")

say() { printf '== %s\n' "$*"; }
die() { printf 'check_template.sh: %s\n' "$*" >&2; exit 1; }

make_venv() {
  "$py" -m venv "$venv" && return 0
  rm -rf "$venv"
  # Debian's python3 ships venv without ensurepip (that is the python3-venv package). A venv
  # without pip, filled by the outer pip (pip >= 22.3 has --python), needs no extra package.
  say "python -m venv failed; trying a venv without pip, bootstrapped by the outer pip"
  if "$py" -m venv --without-pip "$venv" &&
    "$py" -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check pip; then
    return 0
  fi
  rm -rf "$venv"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing python3-venv with apt-get"
    apt-get install -y python3-venv || { apt-get update && apt-get install -y python3-venv; }
    "$py" -m venv "$venv" && return 0
  fi
  die "cannot create a virtualenv with $py (on Debian: apt-get install python3-venv)"
}

install_tools() {
  local stamp=$venv/.dsr-requirements
  if [ -x "$venv/bin/cfn-lint" ] && [ -x "$venv/bin/sam" ] &&
    [ "$(cat "$stamp" 2>/dev/null)" = "${requirements[*]}" ]; then
    return 0
  fi
  command -v "$py" >/dev/null || die "$py not found (set PYTHON)"
  say "creating $venv and installing ${requirements[*]}"
  [ -x "$venv/bin/python" ] || make_venv
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
  printf '%s' "${requirements[*]}" >"$stamp"
}

# Everything below must work without a network: run it in an empty network namespace when we
# may (root, or unprivileged user namespaces), else point every HTTP client at a closed port.
offline() {
  if unshare --net --map-root-user true 2>/dev/null; then
    unshare --net --map-root-user "$@"
  else
    HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 \
      http_proxy=http://127.0.0.1:9 NO_PROXY='' no_proxy='' "$@"
  fi
}

# Dummy credentials and region; ignore any real AWS configuration of the caller.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0

start=$SECONDS
install_tools
cd "$repo"
templates=(template.yaml examples/*.yaml)
failed=()
step() {
  local name=$1
  shift
  say "$name"
  if offline "$@"; then
    printf 'ok    %s\n' "$name"
  else
    printf 'FAIL  %s (exit %s)\n' "$name" "$?"
    failed+=("$name")
  fi
}

say "cfn-lint $("$venv/bin/cfn-lint" --version | awk '{print $2}'), $("$venv/bin/sam" --version)"
step "cfn-lint ${templates[*]}" "$venv/bin/cfn-lint" -- "${templates[@]}"
for t in "${templates[@]}"; do
  step "sam validate -t $t" "$venv/bin/sam" validate --region us-east-1 -t "$t"
  step "sam validate --lint -t $t" "$venv/bin/sam" validate --lint --region us-east-1 -t "$t"
done
step "template test (scripts/template_test.py --self-test)" \
  "$venv/bin/python" scripts/template_test.py --self-test

elapsed=$((SECONDS - start))
if [ ${#failed[@]} -eq 0 ]; then
  say "template checks passed (${elapsed}s)"
else
  say "template checks FAILED (${elapsed}s): ${failed[*]}"
  exit 1
fi
