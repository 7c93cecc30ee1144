"""A CPU cap for the benchmark: a cgroup that gives its processes a fixed share of one CPU.

Lambda gives a function CPU in proportion to its memory, one vCPU at 1,769 MB, so a 128 MB
function runs at about 7.2 % of one CPU. `CpuCap(share)` reproduces that with the kernel's CFS
bandwidth control: a quota of `share * period` microseconds of CPU time per `period` (100 ms, the
kernel's default period), in a cgroup of its own, on either hierarchy:

- cgroup v2: `cpu.max` ("QUOTA PERIOD") in a child of this process's cgroup;
- cgroup v1: `cpu.cfs_quota_us` and `cpu.cfs_period_us` in a child of this process's cgroup in the
  `cpu` controller's hierarchy.

Only the processes started through `wrap()` are capped: the command first moves itself into the
cgroup, then `exec`s the measured binary, so the binary runs capped from its first instruction.
`CpuCap.probe()` says why the machine does not allow this (no cgroup file system with a `cpu`
controller, or one that this user cannot write, as in most unprivileged containers).
"""

from __future__ import annotations

import os
from pathlib import Path

# CFS bandwidth period, in microseconds (the kernel's default; the quota's lower bound is 1 ms).
PERIOD_US = 100_000
# Lambda's memory to CPU ratio: one vCPU at 1,769 MB.
MB_PER_VCPU = 1769


def share_of_memory(memory_mb: int) -> float:
    """The CPU share a Lambda function of `memory_mb` gets (1.0 = one CPU)."""
    return memory_mb / MB_PER_VCPU


class CgroupUnavailable(Exception):
    """The machine does not let this process cap a child's CPU; the message says why."""


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, file system type, super options) of every cgroup mount."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, super_opts = fields[sep + 1], fields[sep + 3]
            if fstype in ("cgroup", "cgroup2"):
                out.append((fields[4], fstype, set(super_opts.split(","))))
    return out


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per hierarchy: the controllers (or "" for v2) → path."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            out[controllers] = path
    return out


def _locate() -> tuple[str, Path]:
    """("v2" | "v1", the directory in which to create the capped cgroup)."""
    mounts, own = _mounts(), _own_paths()
    for point, fstype, _ in mounts:
        if fstype != "cgroup2":
            continue
        parent = Path(point) / own.get("", "/").lstrip("/")
        try:
            controllers = (parent / "cgroup.controllers").read_text().split()
        except OSError:
            continue
        if "cpu" in controllers:
            return "v2", parent
    for point, fstype, opts in mounts:
        if fstype == "cgroup" and "cpu" in opts:
            key = next((k for k in own if "cpu" in k.split(",")), None)
            return "v1", Path(point) / (own.get(key, "/") if key else "/").lstrip("/")
    raise CgroupUnavailable(
        "no cgroup file system with a cpu controller is mounted (/proc/self/mountinfo)")


class CpuCap:
    """A cgroup capped at `share` of one CPU; `close()` removes it."""

    def __init__(self, share: float) -> None:
        if not 0.01 <= share <= 64:
            raise ValueError(f"CPU share {share} is out of range (0.01 to 64)")
        self.share = share
        self.version, parent = _locate()
        quota_us = round(share * PERIOD_US)
        self.path = parent / f"dsr-bench-{os.getpid()}-{round(share * 1e6)}"
        try:
            if self.version == "v2":
                subtree = parent / "cgroup.subtree_control"
                if "cpu" not in subtree.read_text().split():
                    subtree.write_text("+cpu")
                self.path.mkdir(exist_ok=True)
                (self.path / "cpu.max").write_text(f"{quota_us} {PERIOD_US}")
            else:
                self.path.mkdir(exist_ok=True)
                (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(quota_us))
        except OSError as e:
            self.close()
            raise CgroupUnavailable(
                f"cannot create a CPU-capped cgroup under {parent} (cgroup {self.version}): "
                f"{e.strerror or e}; it needs root and a writable cgroup file system") from e

    @staticmethod
    def probe() -> str | None:
        """None when a cap can be created here, else the reason it cannot."""
        try:
            CpuCap(0.5).close()
        except CgroupUnavailable as e:
            return str(e)
        return None

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv`, started so that it runs inside the cgroup from its first instruction."""
        procs = self.path / "cgroup.procs"
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(procs), *argv]

    def throttled(self) -> dict[str, int]:
        """The cgroup's bandwidth statistics: periods, throttled periods, throttled time (µs)."""
        stat = {}
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, value = line.split()
            stat[key] = int(value)
        if self.version == "v1":
            return {"periods": stat.get("nr_periods", 0), "throttled": stat.get("nr_throttled", 0),
                    "throttled_us": stat.get("throttled_time", 0) // 1000}
        return {"periods": stat.get("nr_periods", 0), "throttled": stat.get("nr_throttled", 0),
                "throttled_us": stat.get("throttled_usec", 0)}

    def close(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass
