#!/usr/bin/env bash
# The counts docs/deployment.md gives for the template checks, read from the checks' own output:
# `scripts/template_test.py --self-test` prints how many harmful edits of template.yaml and of
# the recipe example it rejected, and its closing line counts every check; the guide must give
# the same numbers. Needs cfn-lint's Python (the SAM virtualenv; installed when missing). The
# last line reads `doc counts: N passed, M failed`.
set -euo pipefail

LOG_TAG=doc-counts-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/check.sh
source "$REPO_ROOT/scripts/lib/check.sh"
cd "$REPO_ROOT"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

ensure_sam_tools >/dev/null
"$SAM_VENV/bin/python" scripts/template_test.py --self-test >"$WORK/out" || die "the template test fails"
template_edits="$(sed -n 's/^self-test: \([0-9]*\) of [0-9]* mutations of template.yaml rejected$/\1/p' "$WORK/out")"
recipe_edits="$(sed -n 's/^self-test: \([0-9]*\) of [0-9]* mutations of examples\/redeploy-on-rotation.yaml rejected$/\1/p' "$WORK/out")"
closing="$(tail -n1 "$WORK/out")"
[[ -n $template_edits && -n $recipe_edits && $closing == "template: "* ]] ||
    die "template_test.py --self-test no longer prints its counts as this test reads them"

# says TEXT: docs/deployment.md contains TEXT, its lines joined (a phrase may wrap).
says() {
    local text=$1
    tr '\n' ' ' <docs/deployment.md | tr -s ' ' | grep -qF -- "$text" ||
        { printf '    docs/deployment.md does not say: %s\n' "$text" >&2; return 1; }
}
check "the template's harmful edits: $template_edits" says "applies $template_edits harmful edits"
check "the recipe's harmful edits: $recipe_edits (Check the template)" says "and $recipe_edits to \`examples/redeploy-on-rotation.yaml\`"
check "the recipe's harmful edits: $recipe_edits (Reacting to a new AWSCURRENT)" says "apply $recipe_edits harmful edits to it"
check "the closing line: $closing" says "\`$closing\`"

check_summary "doc counts"
