"""Reads a libtest JSON event stream (`--format json --report-time`) on stdin and prints what
`cargo test` prints: a line per test (with its time), the failures' captured output, and the
closing `test result:` line. Writes every test's time to a TSV file and prints the slowest.

    test_binary -Z unstable-options --format json --report-time | test_times.py TSV [TOP]

TSV gets `seconds<TAB>outcome<TAB>name` per test, slowest first. Exits 1 when a test failed or
the stream ended without the suite's result, else 0. Lines that are not JSON events (a test
printing to stdout with --nocapture) are passed through.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    tsv = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    times: list[tuple[float, str, str]] = []
    failures: list[tuple[str, str]] = []
    suite = None
    for line in sys.stdin:
        try:
            event = json.loads(line)
        except ValueError:
            sys.stdout.write(line)
            continue
        kind, what = event.get("type"), event.get("event")
        if kind == "suite" and what == "started":
            print(f"\nrunning {event.get('test_count', 0)} tests", flush=True)
        elif kind == "suite" and what in ("ok", "failed"):
            suite = event
        elif kind == "test" and what == "timeout":
            # A warning while the test runs on, not an outcome.
            print(f"test {event['name']} has been running for over 60 seconds", flush=True)
        elif kind == "test" and what in ("ok", "failed", "ignored"):
            name = event["name"]
            if what == "ignored":
                reason = event.get("message")
                print(f"test {name} ... ignored" + (f", {reason}" if reason else ""), flush=True)
                continue
            seconds = float(event.get("exec_time", 0.0))
            times.append((seconds, what, name))
            print(f"test {name} ... {what} ({seconds:.2f} s)", flush=True)
            if what == "failed":
                failures.append((name, event.get("stdout", "")))
    for name, out in failures:
        print(f"\n---- {name} stdout ----\n{out}", end="" if out.endswith("\n") else "\n")
    if failures:
        print("\nfailures:")
        for name, _ in failures:
            print(f"    {name}")
    times.sort(reverse=True)
    with open(tsv, "w") as f:
        for seconds, what, name in times:
            f.write(f"{seconds:.3f}\t{what}\t{name}\n")
    if times:
        print(f"\nslowest tests (all in {tsv}):")
        for seconds, what, name in times[:top]:
            print(f"  {seconds:8.2f} s  {name}" + ("" if what == "ok" else f"  ({what})"))
    if suite is None:
        print("\ntest result: FAILED. the test binary ended without a result")
        return 1
    result = "ok" if suite["event"] == "ok" else "FAILED"
    print(
        f"\ntest result: {result}. {suite['passed']} passed; {suite['failed']} failed; "
        f"{suite['ignored']} ignored; {suite['measured']} measured; "
        f"{suite['filtered_out']} filtered out; finished in {float(suite['exec_time']):.2f}s\n"
    )
    return 0 if result == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
