#!/usr/bin/env bash
# scripts/soak_suite.sh N: the full suite, load profile included (scripts/test.sh --load), N times
# back to back while an unrelated CPU hog holds the machine at a load of 2 (two busy workers:
# stress-ng --cpu 2, installed from Debian when missing; two shell busy loops where it cannot be).
# The script starts the hog before the first run and stops it after the last, whatever happens.
# A suite that people trust passes every run.
#
# Each run's output goes to target/soak/run-K.log and its per-test times to
# target/soak/run-K/*.tsv (docs/testing.md). The summary at the end lists every run: its
# duration, the load average before it, its outcome and the tests that failed in it; its last
# line reads `soak: P passed, F failed`. The exit status is 0 when every run passed.
#
# The stack is brought up once (scripts/stack.sh up) and left as each run finds it; at the end,
# the services this script started are stopped, as scripts/test.sh does. Extra arguments go to
# scripts/test.sh (`-- --nocapture`). SOAK_HOG=0 runs without the hog.
set -euo pipefail

LOG_TAG='soak'
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

[[ ${1:-} =~ ^[1-9][0-9]*$ ]] || die "usage: scripts/soak_suite.sh N [scripts/test.sh arguments]"
RUNS=$1
shift
ensure_rust

OUT=target/soak
rm -rf "$OUT"
mkdir -p "$OUT"

HOG_PIDS=()
RUNNING_BEFORE=()
STACK_TOUCHED=0

# start_hog: two busy workers, in their own process group so that stopping them stops all.
start_hog() {
    if ! have stress-ng && have apt-get && [[ $(id -u) -eq 0 ]]; then
        apt_install stress-ng || true
    fi
    if have stress-ng; then
        setsid stress-ng --cpu 2 --timeout 0 >/dev/null 2>&1 &
        HOG_PIDS+=("$!")
        log "CPU hog: stress-ng --cpu 2 (pid ${HOG_PIDS[*]})"
    else
        local i
        for i in 1 2; do
            setsid bash -c 'while :; do :; done' >/dev/null 2>&1 &
            HOG_PIDS+=("$!")
        done
        log "CPU hog: two shell busy loops (pids ${HOG_PIDS[*]})"
    fi
}

stop_hog() {
    local pid
    for pid in "${HOG_PIDS[@]}"; do
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    done
    for pid in "${HOG_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    ((${#HOG_PIDS[@]} == 0)) || log "CPU hog stopped"
    HOG_PIDS=()
}

finish() {
    local rc=$?
    stop_hog
    if ((STACK_TOUCHED)); then
        local started
        mapfile -t started < <(started_by_us)
        if ((${#started[@]} > 0)); then
            scripts/stack.sh down "${started[@]}" || log "scripts/stack.sh down ${started[*]} failed"
        fi
    fi
    exit "$rc"
}
trap finish EXIT

mapfile -t RUNNING_BEFORE < <(scripts/stack.sh running 2>/dev/null || true)
STACK_TOUCHED=1
scripts/stack.sh up
if [[ ${SOAK_HOG:-1} != 0 ]]; then
    start_hog
fi

passed=0 failed=0 rows=()
for ((k = 1; k <= RUNS; k++)); do
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    log "run $k of $RUNS (load average $load): scripts/test.sh --load, log $OUT/run-$k.log"
    start=$SECONDS rc=0
    rm -rf target/tmp/test-times
    DSR_KEEP_STACK=1 bash scripts/test.sh --load "$@" >"$OUT/run-$k.log" 2>&1 || rc=$?
    seconds=$((SECONDS - start))
    mkdir -p "$OUT/run-$k"
    cp target/tmp/test-times/*.tsv "$OUT/run-$k/" 2>/dev/null || true
    failures="$(cat "$OUT/run-$k"/*.tsv 2>/dev/null | awk -F'\t' '$2 != "ok" { print $3 }' |
        sort -u | paste -sd' ' -)"
    if ((rc == 0)); then
        passed=$((passed + 1))
        outcome=passed
    else
        failed=$((failed + 1))
        outcome="FAILED (exit $rc)${failures:+: $failures}"
        log "run $k failed; the end of its log:"
        tail -n 40 "$OUT/run-$k.log" >&2
    fi
    rows+=("$(printf '  run %-3s %6ss  load before %-15s %s' "$k" "$seconds" "$load" "$outcome")")
    log "run $k: $outcome in ${seconds}s"
done

printf '\nsoak: %s runs of scripts/test.sh --load%s\n' "$RUNS" \
    "$([[ ${SOAK_HOG:-1} != 0 ]] && echo ', a CPU hog of two workers beside them')"
printf '%s\n' "${rows[@]}"
printf 'soak: %s passed, %s failed\n' "$passed" "$failed"
((failed == 0))
