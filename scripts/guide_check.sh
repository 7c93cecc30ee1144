#!/usr/bin/env bash
# The deployment guide's path from a fresh clone, as a new operator follows it (CI runs this):
#   1. clones this checkout's HEAD (committed files only) into a temporary directory;
#   2. there, in a shell started with no AWS variable at all (env -i; checked before and after
#      each step), runs the guide's commands as docs/deployment.md writes them:
#        eval "$(scripts/stack.sh tools)"     tools on PATH, checked: zig, cargo lambda, sam, cfn-lint
#        sam validate --lint
#        sam build --beta-features --parameter-overrides Architecture=x86_64
#        cargo lambda build --release --x86-64 --output-format zip
#        scripts/release.sh
#      and, where scripts/release.sh could build arm64 (the aarch64 standard library installed, or
#      installable with rustup), the arm64 forms too: sam build --beta-features and
#      SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 sam build (the template's default architecture),
#      cargo lambda build --release --arm64 --output-format zip, and
#      sam build --beta-features -t examples/rotation-schedule.yaml;
#   3. checks what docs/deployment.md says of the packages against dist/manifest.json: the shared
#      libraries a bootstrap may need, and the x86_64 glibc floor;
#   4. runs the release test (tests/it/release.rs) on the clone's dist/, against the local stack
#      (scripts/stack.sh up first): each zip's bootstrap rotates a secret under the Lambda
#      Runtime API emulator, the arm64 one under QEMU's user-mode emulator (Debian's qemu-user
#      and libc6-arm64-cross, installed with apt-get when missing); every zip must have done so.
# Each step is timed; the summary gives the build times. The x86_64 build is compiled once:
# `sam build` compiles it, and the later x86_64 commands find it compiled (the same cargo
# invocation, profile and flags); the arm64 commands likewise share one build.
#
# The clone is fresh every time; its build cache is not, as in any CI with a cache: the clone's
# target/ (less target/lambda, the packages) is kept between runs in DSR_GUIDE_CACHE (default
# /var/tmp/dsr-guide-cache), and the clone is made at the same path each time, so that cargo
# finds the dependencies compiled and builds only what the commit changed. On a fresh machine
# the cache is empty and every build is from scratch; --cold empties it first. One check at a
# time uses a cache (a lock).
#
# Usage: scripts/guide_check.sh [--keep] [--cold]   (--keep leaves the clone, and says where)
set -euo pipefail

LOG_TAG=guide
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

KEEP=0 COLD=0
for arg in "$@"; do
    case $arg in
        --keep) KEEP=1 ;;
        --cold) COLD=1 ;;
        *) die "usage: scripts/guide_check.sh [--keep] [--cold]" ;;
    esac
done

ensure_rust
have unzip || apt_install unzip
CACHE=${DSR_GUIDE_CACHE:-/var/tmp/dsr-guide-cache}
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock -n 9 || { log "another guide check uses $CACHE; waiting"; flock 9; }
WORK=$CACHE/run
rm -rf "$WORK"
mkdir -p "$WORK"
((COLD == 0)) || rm -rf "$CACHE/target"
CLONE=$WORK/clone
finish() {
    local rc=$?
    phase_summary || true
    # The build cache goes back for the next run, without the packages.
    if [[ -d $CLONE/target ]]; then
        rm -rf "$CACHE/target" "$CLONE/target/lambda"
        mv "$CLONE/target" "$CACHE/target"
    fi
    if ((KEEP)); then
        log "the clone is kept in $CLONE (its target/ is in $CACHE)"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap finish EXIT

phase "git clone (HEAD $(git rev-parse --short HEAD))" git clone --quiet --no-hardlinks "$REPO_ROOT" "$CLONE"
if [[ -d $CACHE/target ]]; then
    mv "$CACHE/target" "$CLONE/target"
    log "build cache: $CACHE/target (kept from the last run; --cold builds from scratch)"
else
    log "build cache: none, every build is from scratch"
fi

# guide STEP COMMANDS: the commands, in bash in the clone, in a shell that began with no AWS
# variable; the tools line is evaluated first (after the first step), and no AWS variable may be
# set before or after.
readonly CLEAN_PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TOOLS_LINE=
guide() {
    local commands=$1 vars=(HOME="$HOME" PATH="$CLEAN_PATH" LANG=C.UTF-8 SAM_CLI_TELEMETRY=0)
    [[ -z ${CI:-} ]] || vars+=(CI="$CI")
    # shellcheck disable=SC2016  # expanded by the clean shell
    env -i "${vars[@]}" \
        bash -c '
            set -euo pipefail
            cd "$1"
            no_aws() {
                if compgen -e | grep "^AWS_"; then
                    echo "[guide] an AWS variable is set (above): the guide must not need one" >&2
                    return 1
                fi
            }
            no_aws
            if [[ -n $2 ]]; then eval "$2"; fi
            no_aws
            eval "$3"
            no_aws
        ' _ "$CLONE" "$TOOLS_LINE" "$commands"
}

# The tools line is kept (in $WORK, beside the clone) for the later steps: each runs in its own
# shell, as a reader's terminal would be after the same eval.
tools() {
    # shellcheck disable=SC2016
    guide 'scripts/stack.sh tools >../tools.line
           eval "$(cat ../tools.line)"
           zig version && cargo lambda --version && sam --version && cfn-lint --version'
}
# shellcheck disable=SC2016  # the guide's own words
phase 'eval "$(scripts/stack.sh tools)"' tools
TOOLS_LINE="$(cat "$WORK/tools.line")"
grep -q '^case ' <<<"$TOOLS_LINE" || die "scripts/stack.sh tools printed: $TOOLS_LINE"

phase "sam validate --lint" guide 'sam validate --lint'
phase "sam build --beta-features --parameter-overrides Architecture=x86_64" \
    guide 'sam build --beta-features --parameter-overrides Architecture=x86_64'
built_by_sam() {
    guide 'readelf -h .aws-sam/build/RotationFunction/bootstrap | grep -q "Machine:.*X86-64"'
}
phase "sam build left an x86_64 bootstrap" built_by_sam
phase "cargo lambda build --release --x86-64 --output-format zip" \
    guide 'cargo lambda build --release --x86-64 --output-format zip && test -s target/lambda/db-secret-rotator/bootstrap.zip'
phase "scripts/release.sh" guide 'scripts/release.sh'

DIST=$CLONE/dist
ARM64=0
if python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); sys.exit(0 if any(a.get("architecture") == "arm64" for a in m["artifacts"]) else 1)' \
    "$DIST/manifest.json"; then
    ARM64=1
    phase "sam build --beta-features (arm64)" guide 'sam build --beta-features &&
        readelf -h .aws-sam/build/RotationFunction/bootstrap | grep -q "Machine:.*AArch64"'
    phase "SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 sam build (arm64)" \
        guide 'SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 sam build'
    phase "cargo lambda build --release --arm64 --output-format zip" \
        guide 'cargo lambda build --release --arm64 --output-format zip'
    phase "sam build --beta-features -t examples/rotation-schedule.yaml" \
        guide 'sam build --beta-features -t examples/rotation-schedule.yaml'
else
    log "arm64 was not built here (dist/manifest.json, not_built, says why): its commands are not run"
fi

# The guide's claims about the packages, against the manifest.
doc_claims() {
    python3 - "$CLONE/docs/deployment.md" "$DIST/manifest.json" <<'PY'
import json, re, sys
doc = " ".join(open(sys.argv[1]).read().split())
manifest = json.load(open(sys.argv[2]))
libs = re.search(r"needs, dynamically, only glibc's own libraries: (.*?), all of which", doc)
floor = re.search(r"Its glibc floor \(.*?\) is ([0-9.]+) on x86_64", doc)
if not libs or not floor:
    sys.exit("docs/deployment.md no longer says which libraries and which glibc floor (update this check)")
allowed = set(re.findall(r"`([^`]+)`", libs.group(1)))
problems = []
for a in manifest["artifacts"]:
    binary = a.get("bootstrap", a)
    extra = set(binary["needed"]) - allowed
    if extra:
        problems.append(f"{a['file']} needs {sorted(extra)}, which the guide does not list")
    if a.get("kind") == "lambda-zip" and a["architecture"] == "x86_64" and binary["glibc_floor"] != floor.group(1):
        problems.append(f"{a['file']}: glibc floor {binary['glibc_floor']}, the guide says {floor.group(1)}")
if problems:
    sys.exit("; ".join(problems))
print(f"the guide's libraries {sorted(allowed)} and x86_64 glibc floor {floor.group(1)} hold")
PY
}
phase "docs/deployment.md's libraries and glibc floor hold for dist/" doc_claims

# The packages against the stack, from this checkout's test suite; an arm64 package runs under
# QEMU's user-mode emulator.
if ((ARM64)) && { ! have qemu-aarch64 || [[ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]]; }; then
    apt_install qemu-user libc6-arm64-cross
fi
release_test() {
    scripts/stack.sh up >/dev/null
    (
        eval "$(scripts/stack.sh env)" 2>/dev/null
        DSR_RELEASE_DIR=$DIST cargo test --test it -- release:: --nocapture 2>&1 |
            tee "$WORK/release-test.log" >&2
    )
    local ran
    ran="$(sed -n 's/^release packages that rotated a secret: //p' "$WORK/release-test.log")"
    [[ $ran == *x86_64.zip* ]] && { ((ARM64 == 0)) || [[ $ran == *arm64.zip* ]]; }
}
phase "the release test (each package rotates a secret)" release_test
log "the guide's path passed"
