#!/usr/bin/env bash
# Checks the CDK example (examples/cdk), without AWS credentials:
#   1. npm ci (the committed package-lock.json; needs the npm registry the first time);
#   2. tsc, then the example's tests (node --test: the role grants what template.yaml grants);
#   3. `cdk synth` offline, twice (no options; every option), then cfn-lint on both templates.
# Synth only packages a directory holding `bootstrap`; the template does not depend on what the
# binary is. So, unless `cargo lambda build` has left one in target/lambda/db-secret-rotator, a
# stripped copy of the debug build (target/debug/db-secret-rotator, which `cargo test` builds) is
# staged instead: the check needs no release build, and its cdk.out is not a deployable package.
# Node.js 20 or newer and npm are installed with apt-get when missing; cfn-lint comes from the
# virtualenv of scripts/check_template.sh.
#
# Usage: scripts/check_cdk.sh
set -euo pipefail

LOG_TAG=check-cdk
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
readonly APP=$REPO_ROOT/examples/cdk
readonly OUT=$STACK_DIR/cdk
readonly SECRET=arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app/postgres-AbCdEf

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export CDK_DISABLE_VERSION_CHECK=true

ensure_node() {
    if ! have node || ! have npm; then
        apt_install nodejs npm
    fi
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    ((major >= 20)) || log "WARNING: Node.js $major is older than the 20 that aws-cdk-lib asks for"
}

# Sets BOOTSTRAP_DIR.
stage_bootstrap() {
    local built=$REPO_ROOT/target/lambda/db-secret-rotator
    if [[ -x $built/bootstrap ]]; then
        BOOTSTRAP_DIR=$built
        log "packaging $built/bootstrap (cargo lambda build's output)"
        return 0
    fi
    local debug=$REPO_ROOT/target/debug/db-secret-rotator
    if [[ ! -x $debug ]]; then
        ensure_rust
        log "cargo build --bin db-secret-rotator (the debug build to stage)"
        (cd "$REPO_ROOT" && cargo build --quiet --bin db-secret-rotator)
    fi
    BOOTSTRAP_DIR=$OUT/bootstrap
    rm -rf "$BOOTSTRAP_DIR"
    mkdir -p "$BOOTSTRAP_DIR"
    strip -o "$BOOTSTRAP_DIR/bootstrap" "$debug" 2>/dev/null || cp "$debug" "$BOOTSTRAP_DIR/bootstrap"
    log "staged a stripped copy of the debug build as $BOOTSTRAP_DIR/bootstrap (synth only)"
}

# synth NAME CONTEXT...: cdk synth into $OUT/NAME, without a network.
synth() {
    local name=$1 args=() kv
    shift
    for kv in "bootstrapDir=$BOOTSTRAP_DIR" "secretArn=$SECRET" "$@"; do
        args+=(--context "$kv")
    done
    rm -rf "${OUT:?}/$name"
    if ! (cd "$APP" && NODE_NO_WARNINGS=1 offline npx --no-install cdk synth --quiet --no-notices \
        --no-version-reporting --output "$OUT/$name" "${args[@]}" >"$OUT/$name.log" 2>&1); then
        log_tail "$OUT/$name.log"
        return 1
    fi
    [[ -s $OUT/$name/DbSecretRotator.template.json ]] || die "no template in $OUT/$name"
}

# W3005 is ignored: the CDK itself adds DependsOn on the role that Role: !GetAtt already implies.
lint() {
    "$SAM_VENV/bin/cfn-lint" --ignore-checks W3005 -- "$@"
}

main() {
    mkdir -p "$OUT"
    ensure_node
    ensure_sam_tools
    stage_bootstrap
    phase "npm ci (examples/cdk)" bash -c "cd '$APP' && npm ci --no-audit --no-fund --loglevel=error"
    phase "tsc" bash -c "cd '$APP' && npx --no-install tsc"
    phase "node --test (examples/cdk/test)" bash -c "cd '$APP' && node --test dist/test/"
    phase "cdk synth, no options" synth plain
    phase "cdk synth, every option" synth full \
        "masterSecretArn=arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/master-GhIjKl" \
        "kmsKeyArn=arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab" \
        "subnetIds=subnet-0123456789abcdef0,subnet-0fedcba9876543210" \
        "securityGroupIds=sg-0123456789abcdef0" "rotationStrategy=alternating-users" \
        "architecture=x86_64"
    phase "cfn-lint (synthesized templates)" lint "$OUT/plain/DbSecretRotator.template.json" \
        "$OUT/full/DbSecretRotator.template.json"
    phase_summary
    log "CDK example checks passed (${SECONDS}s)"
}

main
