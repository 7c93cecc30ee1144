# shellcheck shell=bash
# A small harness for the scripts' own tests (scripts/tests/*_test.sh): `check WHAT CMD...` runs
# CMD and counts it as passed or failed, printing `FAIL  WHAT` (and the files named in
# CHECK_SHOW, when set) on failure; `check_summary NAME` prints `NAME: N passed, M failed` and
# returns non-zero when anything failed.

CHECK_PASSED=0
CHECK_FAILED=0
CHECK_SHOW=()

check() {
    local what=$1 file
    shift
    if "$@"; then
        CHECK_PASSED=$((CHECK_PASSED + 1))
    else
        CHECK_FAILED=$((CHECK_FAILED + 1))
        printf 'FAIL  %s\n' "$what" >&2
        for file in "${CHECK_SHOW[@]}"; do
            [[ -s $file ]] && sed 's/^/    /' "$file" >&2
        done
    fi
    return 0
}

check_summary() {
    printf '%s: %d passed, %d failed\n' "$1" "$CHECK_PASSED" "$CHECK_FAILED"
    ((CHECK_FAILED == 0))
}
