#!/usr/bin/env bash
# The recovery commands of docs/deployment.md, as written there, with AWS CLI 1.x against the
# stack's moto: attaching a secret (moto answers 255 but stages AWSPENDING), reading the labels
# with version_with, finishing by hand, and, once moto has put AWSCURRENT on two versions, the
# clear refusal of version_with and of the "move AWSCURRENT back" command.
#
# Needs the stack's variables (eval "$(scripts/stack.sh env)"); without them it skips, except
# under CI=true, where it fails. The last line reads `deployment doc: N passed, M failed`.
set -euo pipefail

LOG_TAG=deployment-doc-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/check.sh
source "$REPO_ROOT/scripts/lib/check.sh"

if [[ -z ${AWS_ENDPOINT_URL_SECRETS_MANAGER:-} ]]; then
    [[ ${CI:-} == true ]] && die "the stack's variables are not set (eval \"\$(scripts/stack.sh env)\")"
    log "skipped: the stack's variables are not set (eval \"\$(scripts/stack.sh env)\")"
    exit 0
fi
ensure_awscli

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
SECRET=dsr-doc-test-$$-$RANDOM

# The doc's commands run against moto, through a wrapper named aws.
mkdir -p "$WORK/bin"
cat >"$WORK/bin/aws" <<WRAP
#!/bin/sh
exec "$AWSCLI_VENV/bin/aws" --endpoint-url "$AWS_ENDPOINT_URL_SECRETS_MANAGER" "\$@"
WRAP
chmod +x "$WORK/bin/aws"
export PATH="$WORK/bin:$PATH"

# block PATTERN: the first ```sh block of docs/deployment.md containing PATTERN, unindented,
# with the example secret name replaced by this test's.
block() {
    "$DSR_PYTHON" - "$REPO_ROOT/docs/deployment.md" "$1" "$SECRET" <<'PY'
import re, sys, textwrap
text, pattern, secret = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
for body in re.findall(r"^[ \t]*```sh\n(.*?)^[ \t]*```", text, re.S | re.M):
    if pattern in body:
        print(textwrap.dedent(body).replace("SECRET=prod/app/postgres", "SECRET=" + secret))
        sys.exit(0)
sys.exit("no sh block of docs/deployment.md contains " + pattern)
PY
}
ATTACH="$(block 'rotation-rules AutomaticallyAfterDays=30' | sed "s#prod/app/postgres#$SECRET#")"
LABELS="$(block 'version_with() {')"
# shellcheck disable=SC2016  # the doc's text, not expansions
FINISH="$(block '--move-to-version-id "$PENDING"')"
# shellcheck disable=SC2016
BACK="$(block 'PREVIOUS=$(version_with AWSPREVIOUS)')"

CHECK_SHOW=("$WORK/out")
# outcome STATUS PATTERN SCRIPT: bash -c SCRIPT exits with STATUS (any non-zero for "fail") and
# its output matches PATTERN.
outcome() {
    local expected=$1 pattern=$2 script=$3 rc=0
    bash -c "$script" >"$WORK/out" 2>&1 || rc=$?
    { [[ $expected == fail ]] && ((rc != 0)) || [[ $expected == "$rc" ]]; } &&
        grep -Eq -- "$pattern" "$WORK/out"
}

aws secretsmanager create-secret --name "$SECRET" \
    --secret-string '{"engine":"postgres","host":"db","username":"app","password":"unused"}' >/dev/null
check "attach: exit 255 from moto, AWSPENDING staged" outcome 255 'ResourceNotFoundException' "$ATTACH"
check "labels: one pending, one current" outcome 0 '^pending [0-9a-f-]+, current [0-9a-f-]+$' "$LABELS"

# A rotation whose createSecret succeeded: the pending version has a value.
pending="$(bash -c "$LABELS"$'\n''echo "$PENDING"' | tail -n1)"
aws secretsmanager put-secret-value --secret-id "$SECRET" --client-request-token "$pending" \
    --version-stages AWSPENDING \
    --secret-string '{"engine":"postgres","host":"db","username":"app","password":"unused2"}' >/dev/null
check "finish by hand" outcome 0 '' "$LABELS"$'\n'"$FINISH"
check "finish by hand: the pending version is AWSCURRENT" outcome 0 "^$pending"$'\t'"AWSCURRENT$" "aws secretsmanager list-secret-version-ids --secret-id $SECRET \
    --query 'Versions[].[VersionId, join(\`,\`, VersionStages)]' --output text"
check "labels after the finish: no AWSPENDING, said clearly" outcome fail 'no version of .* holds AWSPENDING' "$LABELS"

# moto's own rotation now leaves AWSCURRENT on two versions; the doc's commands must say so.
aws secretsmanager rotate-secret --secret-id "$SECRET" >/dev/null
check "two AWSCURRENT: version_with refuses" outcome fail 'more than one version of .* holds AWSCURRENT' "$LABELS"$'\n''version_with AWSCURRENT'
check "two AWSCURRENT: moving back refuses" outcome fail 'more than one version of .* holds AWSCURRENT' "$LABELS"$'\n'"$BACK"

aws secretsmanager delete-secret --secret-id "$SECRET" --force-delete-without-recovery >/dev/null
check_summary "deployment doc"
