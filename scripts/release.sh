#!/usr/bin/env bash
# Builds the release artifacts into dist/ (or --out DIR):
#   db-secret-rotator-<version>-<arch>.zip   the Lambda package (bootstrap) for each architecture
#                                            that can be built here (x86_64, arm64)
#   db-secret-rotator-<version>-linux-x86_64 the doctor, the same program as a plain executable for
#                                            an operator's x86_64 Linux machine
#   manifest.json                            versions (the crate, rustc, cargo-lambda, zig), the
#                                            commit, and for each binary its size, SHA-256, the
#                                            shared libraries it needs and its glibc floor, checked
#                                            against provided.al2023's glibc 2.34
#   SHA256SUMS                               the SHA-256 of every file above (sha256sum -c SHA256SUMS)
#
# Each zip is built exactly as `sam build` builds the function: `cargo lambda build --release`
# (the release profile, with the CPU cargo-lambda targets: haswell on x86_64, neoverse-n1 on
# arm64), so a `sam build` afterwards reuses the compiled binary. The tools come from
# scripts/stack.sh tools (cargo-lambda and zig, installed when missing); no AWS access is used.
#
# An architecture whose Rust standard library is not installed is added with
# `rustup target add`, as cargo-lambda itself does; where that fails (no rustup, or rustup's
# server out of reach), that architecture is skipped, the manifest says why, and the run ends
# with a warning naming it. It fails when no architecture could be built, when a binary needs a
# newer glibc than provided.al2023's, or when the working tree has uncommitted changes (use
# --allow-dirty for a test build; the manifest then says so).
#
# Usage: scripts/release.sh [--arch x86_64|arm64|all] [--out DIR] [--allow-dirty]
# A build from scratch takes about 10 to 15 minutes per architecture on 2 cores
# (docs/deployment.md, "Build").
set -euo pipefail

LOG_TAG=release
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

readonly BIN=db-secret-rotator
# The glibc of Lambda's OS-only runtime, provided.al2023 (Amazon Linux 2023).
readonly RUNTIME=provided.al2023
readonly RUNTIME_GLIBC=2.34

ARCHES=(x86_64 arm64)
OUT=$REPO_ROOT/dist
ALLOW_DIRTY=0
while (($# > 0)); do
    case $1 in
        --arch)
            case ${2:-} in
                x86_64 | arm64) ARCHES=("$2") ;;
                all) ARCHES=(x86_64 arm64) ;;
                *) die "--arch takes x86_64, arm64 or all" ;;
            esac
            shift 2
            ;;
        --out)
            OUT=${2:?--out needs a directory}
            shift 2
            ;;
        --allow-dirty) ALLOW_DIRTY=1; shift ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *) die "unknown argument '$1' (scripts/release.sh --help)" ;;
    esac
done
[[ $OUT == /* ]] || OUT=$PWD/$OUT

triple() {
    case $1 in
        x86_64) echo x86_64-unknown-linux-gnu ;;
        arm64) echo aarch64-unknown-linux-gnu ;;
    esac
}

# std_installed TRIPLE: the toolchain has the standard library for TRIPLE.
std_installed() {
    local dir
    dir="$(rustc --print target-libdir --target "$1" 2>/dev/null)" && [[ -d $dir ]] &&
        compgen -G "$dir/libstd-*.rlib" >/dev/null
}

# ensure_std ARCH: the standard library for ARCH is installed, or the reason it is not is in
# SKIPPED[ARCH].
declare -A SKIPPED=()
ensure_std() {
    local arch=$1 target out
    target="$(triple "$arch")"
    std_installed "$target" && return 0
    if ! have rustup; then
        SKIPPED[$arch]="the Rust standard library for $target is not installed, and there is no rustup to add it"
        return 1
    fi
    log "rustup target add $target"
    if ! out="$(timeout 300 rustup target add "$target" 2>&1)" || ! std_installed "$target"; then
        SKIPPED[$arch]="the Rust standard library for $target is not installed, and 'rustup target add $target' failed: $(tail -n1 <<<"$out")"
        return 1
    fi
}

version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n1)"
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
dirty=false
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    dirty=true
    ((ALLOW_DIRTY)) || die "the working tree has uncommitted changes: commit them, or use --allow-dirty for a test build"
    log "building from a working tree with uncommitted changes (--allow-dirty): the manifest says so"
fi

ensure_rust
ensure_cargo_lambda
have unzip || apt_install unzip
have readelf || apt_install binutils

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT"

BUILT=()
for arch in "${ARCHES[@]}"; do
    ensure_std "$arch" || { log "$arch: skipped: ${SKIPPED[$arch]}"; continue; }
    start=$SECONDS
    flag=--$arch
    [[ $arch == x86_64 ]] && flag=--x86-64
    log "$arch: cargo lambda build --release $flag --bin $BIN --output-format zip"
    cargo lambda build --release "$flag" --bin "$BIN" --output-format zip --lambda-dir "$WORK/$arch" >&2 ||
        die "$arch: cargo lambda build failed"
    zip=$OUT/$BIN-$version-$arch.zip
    cp "$WORK/$arch/$BIN/bootstrap.zip" "$zip"
    mkdir -p "$WORK/$arch/unzipped"
    (cd "$WORK/$arch/unzipped" && unzip -q "$zip")
    [[ -x $WORK/$arch/unzipped/bootstrap ]] || die "$zip holds no executable bootstrap"
    printf '%s\n' "$((SECONDS - start))" >"$WORK/$arch/seconds"
    BUILT+=("$arch")
    if [[ $arch == x86_64 ]]; then
        cp "$WORK/$arch/unzipped/bootstrap" "$OUT/$BIN-$version-linux-x86_64"
        chmod 0755 "$OUT/$BIN-$version-linux-x86_64"
    fi
done
((${#BUILT[@]} > 0)) || die "no architecture could be built: ${SKIPPED[*]}"

# The manifest, from the files themselves.
skipped_tsv="$(for arch in "${!SKIPPED[@]}"; do printf '%s\t%s\n' "$arch" "${SKIPPED[$arch]}"; done)"
python3 - "$OUT" "$WORK" "$BIN" "$version" "$commit" "$dirty" "$RUNTIME" "$RUNTIME_GLIBC" \
    "$(rustc --version)" "$(cargo lambda --version)" "$(zig version)" "$skipped_tsv" "${BUILT[@]}" <<'PY'
import hashlib, json, os, re, subprocess, sys

out, work, name, version, commit, dirty, runtime, runtime_glibc, rustc, lambda_, zig, skipped = sys.argv[1:13]
built = sys.argv[13:]

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

def version_tuple(v):
    return tuple(int(x) for x in v.split("."))

def elf(path):
    """Size, SHA-256, machine, needed libraries and glibc floor of an ELF executable."""
    header = subprocess.run(["readelf", "-h", path], capture_output=True, text=True, check=True).stdout
    dynamic = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    versions = subprocess.run(["readelf", "-V", path], capture_output=True, text=True, check=True).stdout
    glibc = sorted(set(re.findall(r"Name: GLIBC_([0-9.]+)", versions)), key=version_tuple)
    return {
        "bytes": os.path.getsize(path),
        "sha256": sha256(path),
        "machine": re.search(r"Machine:\s+(.*)", header).group(1).strip(),
        "needed": sorted(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)),
        "glibc_floor": glibc[-1] if glibc else None,
    }

artifacts, problems = [], []
for arch in built:
    zip_name = f"{name}-{version}-{arch}.zip"
    binary = elf(os.path.join(work, arch, "unzipped", "bootstrap"))
    ok = binary["glibc_floor"] is None or version_tuple(binary["glibc_floor"]) <= version_tuple(runtime_glibc)
    if not ok:
        problems.append(f"{zip_name}: bootstrap needs glibc {binary['glibc_floor']}, {runtime} has {runtime_glibc}")
    artifacts.append({
        "file": zip_name,
        "kind": "lambda-zip",
        "architecture": arch,
        "bytes": os.path.getsize(os.path.join(out, zip_name)),
        "sha256": sha256(os.path.join(out, zip_name)),
        "build_seconds": int(open(os.path.join(work, arch, "seconds")).read()),
        "bootstrap": dict(binary, runs_on=f"{runtime} (glibc {runtime_glibc})", glibc_ok=ok),
    })
    if arch == "x86_64":
        doctor = f"{name}-{version}-linux-x86_64"
        artifacts.append(dict(
            {"file": doctor, "kind": "doctor", "architecture": "x86_64"},
            **elf(os.path.join(out, doctor)),
            runs_on="x86_64 Linux with glibc at least glibc_floor and an AVX2 CPU (haswell or newer)",
        ))

manifest = {
    "name": name,
    "version": version,
    "commit": commit,
    "uncommitted_changes": dirty == "true",
    "profile": "release",
    "tools": {"rustc": rustc, "cargo-lambda": lambda_, "zig": zig},
    "runtime": {"name": runtime, "glibc": runtime_glibc},
    "artifacts": artifacts,
    "not_built": [
        {"architecture": a, "reason": r}
        for a, r in (line.split("\t", 1) for line in skipped.splitlines() if line)
    ],
}
with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2)
    f.write("\n")
if problems:
    sys.exit("release: " + "; ".join(problems))
PY

(cd "$OUT" && sha256sum -- *.zip "$BIN-$version-linux-x86_64" manifest.json >SHA256SUMS)

printf '\n%s\n' "release $version (commit ${commit:0:12}$([[ $dirty == true ]] && echo ', uncommitted changes')) in $OUT:"
python3 - "$OUT/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for a in m["artifacts"]:
    b = a.get("bootstrap", a)
    print(f"  {a['file']:<42} {a['bytes']:>10,} bytes   glibc >= {b['glibc_floor']}   needs {', '.join(b['needed'])}")
for s in m["not_built"]:
    print(f"  NOT BUILT: {s['architecture']}: {s['reason']}")
PY
printf '  SHA256SUMS, manifest.json\n'
for arch in "${ARCHES[@]}"; do
    if [[ -n ${SKIPPED[$arch]:-} ]]; then
        log "WARNING: no $arch package: ${SKIPPED[$arch]}"
    fi
done
