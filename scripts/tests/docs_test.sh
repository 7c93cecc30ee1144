#!/usr/bin/env bash
# What the documentation claims, checked against the repository:
#   - docs/protocol.md has every numbered section (1 to 8, 5.1 to 5.13), and every citation
#     "docs/protocol.md N" anywhere in the repository names one of them;
#   - nothing in the files listed in OWN_FILES names a document the repository lacks or a
#     relative path that climbs out of it;
#   - README's configuration table lists every variable of docs/protocol.md 8, and its errorType
#     table every type of 5.10 plus the runtime's own for a payload that is not JSON;
#   - relative links in README.md and docs/*.md lead to files that exist;
#   - every script README.md and docs/*.md tell users to run by its path (the first word of a
#     line in a ```sh block, or a `scripts/….sh …` span) exists and is executable, in git (mode
#     100755) and on disk: a mode of 100644 gives "Permission denied" to whoever follows the doc;
#   - the function binary links nothing but the C library, as README says (checked on the debug
#     build when there is one; with CI=true there must be one).
# The last line reads `docs: N passed, M failed`.
set -euo pipefail

LOG_TAG=docs-test
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
cd "$REPO_ROOT"

# The files whose references must stay inside the repository: everything written here (the
# vendored certificate bundle and the lock files excepted).
OWN_FILES=(README.md docs scripts examples/cdk/bin examples/cdk/lib examples/*.yaml events .ci
    template.yaml src tests bench Cargo.toml certs/PROVENANCE.md)

binary=target/debug/db-secret-rotator
if [[ ! -x $binary ]]; then
    [[ ${CI:-} == true ]] && die "$binary is missing (cargo test builds it)"
    binary=
fi

"${DSR_PYTHON:-python3}" - "$binary" "${OWN_FILES[@]}" <<'PY'
import os
import re
import subprocess
import sys

binary, own = sys.argv[1], sys.argv[2:]
passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL  {what}" + (f": {detail}" if detail else ""), file=sys.stderr)


protocol = open("docs/protocol.md").read()
sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\. ", protocol, re.M))
sections |= set(re.findall(r"^### (\d+\.\d+) ", protocol, re.M))
wanted = {str(n) for n in range(1, 9)} | {f"5.{n}" for n in range(1, 14)}
check("docs/protocol.md has sections 1-8 and 5.1-5.13", wanted <= sections,
      f"missing {sorted(wanted - sections)}")

tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True,
                         text=True).stdout.split("\0")
texts = {}
for path in filter(None, tracked):
    try:
        texts[path] = open(path, encoding="utf-8").read()
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
        pass

bad = []
for path, text in texts.items():
    for cited in re.findall(r"docs/protocol\.md,? (?:section |§)?(\d+(?:\.\d+)?)", text):
        if cited not in sections:
            bad.append(f"{path} cites {cited}")
check("every docs/protocol.md citation names an existing section", not bad, "; ".join(bad))

def owned(path):
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in own)

# A document named in capitals (README.md, PROVENANCE.md) must be one the repository has, and a
# relative path must not climb out of the repository: users have nothing outside it.
documents = {os.path.basename(p) for p in tracked if p}
bad = []
for path, text in texts.items():
    if not owned(path):
        continue
    for name in set(re.findall(r"\b[A-Z][A-Z0-9_]*\.md\b", text)) - documents:
        bad.append(f"{path} names {name}")
    for climb in set(re.findall(r"(?:\.\./)+[\w.-]*", text)):
        if os.path.normpath(os.path.join(os.path.dirname(path), climb)).startswith(".."):
            bad.append(f"{path} points at {climb}")
check("nothing points outside the repository", not bad, "; ".join(sorted(bad)))

readme = open("README.md").read()
section8 = protocol.split("## 8.", 1)[1]
env_line = section8.split("- Secret keys", 1)[0]
names = [n for n in re.findall(r"`([A-Z][A-Z0-9_]+)`", env_line)
         if not n.startswith(("AWS_REGION", "AWS_ENDPOINT", "AWS_LAMBDA_LOG"))]
table = {m for m in re.findall(r"^\| `([A-Z0-9_]+)`", readme, re.M)}
table |= {m for row in re.findall(r"^\| (`[A-Z0-9_]+`(?:, `[A-Z0-9_]+`)+) \|", readme, re.M)
          for m in re.findall(r"`([A-Z0-9_]+)`", row)}
missing = [n for n in names if n not in table]
check("README's configuration table lists every variable of docs/protocol.md 8",
      names and not missing, f"missing {missing}")

types = re.findall(r"`([A-Za-z]+)`", protocol.split("### 5.10", 1)[1].split("- No secret", 1)[0])
types = [t for t in types if t[0].isupper() and t not in ("JSON",)]
rows = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
missing = [t for t in types + ["&lambda_runtime::deserializer::DeserializeError"] if t not in rows]
check("README's errorType table lists every type, the runtime's included", not missing,
      f"missing {missing}")

bad = []
for doc in ["README.md"] + [f"docs/{f}" for f in os.listdir("docs") if f.endswith(".md")]:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", open(doc).read()):
        if "://" in target or target.startswith("mailto:"):
            continue
        if not os.path.exists(os.path.join(os.path.dirname(doc), target)):
            bad.append(f"{doc} -> {target}")
check("relative links lead to existing files", not bad, "; ".join(bad))

# Scripts the documents run by their path.
modes = {}
for line in subprocess.run(["git", "ls-files", "-s"], capture_output=True, check=True,
                           text=True).stdout.splitlines():
    meta, path = line.split("\t", 1)
    modes[path] = meta.split()[0]
told = {}
for doc in ["README.md"] + [f"docs/{f}" for f in sorted(os.listdir("docs")) if f.endswith(".md")]:
    text = open(doc).read()
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
        for line in block.splitlines():
            words = [w for w in line.split() if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", w)]
            if words and re.fullmatch(r"(?:\./)?scripts/[\w./-]+", words[0]):
                told.setdefault(words[0].removeprefix("./"), doc)
    for span in re.findall(r"`((?:[A-Z_][A-Z0-9_]*=\S* )*scripts/[\w./-]+\.sh)(?: [^`]*)?`", text):
        told.setdefault(span.split()[-1], doc)
bad = [f"{path} ({doc}): mode {modes.get(path, 'untracked')}"
       + ("" if os.access(path, os.X_OK) else ", not executable on disk")
       for path, doc in sorted(told.items())
       if modes.get(path) != "100755" or not os.access(path, os.X_OK)]
check(f"the {len(told)} scripts the documents run are executable", told and not bad, "; ".join(bad))

if binary:
    dynamic = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
    allowed = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2",
               "librt.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
    check("the binary links only the C library", needed and needed <= allowed,
          f"it needs {sorted(needed)}")

print(f"docs: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
