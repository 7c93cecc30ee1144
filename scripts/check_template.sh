#!/usr/bin/env bash
# Checks template.yaml and examples/*.yaml, offline and without AWS credentials:
#   1. cfn-lint (warnings count as failures),
#   2. `sam validate` (the SAM transform) and `sam validate --lint`,
#   3. scripts/template_test.py --self-test (the permissions and shape, and proof that the test
#      rejects a list of harmful edits).
# cfn-lint and the SAM CLI live in a virtualenv under ${DSR_STACK_DIR:-<repo>/.stack}/venv-sam,
# created and filled from PyPI on first use (about a minute), reused afterwards; the commands
# are linked into ${DSR_STACK_DIR:-<repo>/.stack}/bin (scripts/lib/python.sh).
#
# Usage: scripts/check_template.sh        (PYTHON=python3.11 to choose the interpreter)
# Exit status: 0 when every check passed, 1 otherwise.
set -euo pipefail

LOG_TAG=check-template
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

# Dummy credentials and region; ignore any real AWS configuration of the caller.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0

ensure_sam_tools
sam=$SAM_VENV/bin/sam
cfn_lint=$SAM_VENV/bin/cfn-lint
templates=(template.yaml examples/*.yaml)
log "cfn-lint $("$cfn_lint" --version | awk '{print $2}'), $("$sam" --version)"

PHASE_KEEP_GOING=1
phase "cfn-lint ${templates[*]}" offline "$cfn_lint" -- "${templates[@]}"
for t in "${templates[@]}"; do
    phase "sam validate -t $t" offline "$sam" validate --region us-east-1 -t "$t"
    phase "sam validate --lint -t $t" offline "$sam" validate --lint --region us-east-1 -t "$t"
done
phase "template test (scripts/template_test.py --self-test)" \
    offline "$SAM_VENV/bin/python" scripts/template_test.py --self-test
phase_summary || die "template checks FAILED"
log "template checks passed (${SECONDS}s)"
