#!/usr/bin/env python3
"""The benchmark driver behind scripts/bench.sh (docs/benchmarks.md explains every figure).

For each CPU share (full CPU, then the shares Lambda gives at 128, 256 and 512 MB, each a cgroup
of its own: cpucap.py), each engine (postgres, mariadb, redis) and strategy it serves
(single-user, alternating-users, dual-password: GROUPS) it runs, against the local stack (moto and
the databases are never capped):

- N cold rotations: a fresh function process per rotation, under a Lambda Runtime API emulator
  with the first event already queued: spawn → first GET /next ("ready"), spawn → first
  response, spawn → the fourth step's response ("cold rotation"), the process's CPU time (user +
  system, all threads, from wait4) and peak RSS; the rotation's Secrets Manager operations are
  counted by a proxy in front of moto. The emulators and the proxy are the integration suite's
  (the test kit, crates/testkit), served by the bench harness (bench/harness.rs, `Harness` below);
- N cold floor rotations, interleaved with them: a fresh floor process (bench/floor.rs) with its
  request already written: spawn → set up ("ready", as the floor notes it), spawn → the end of
  its createSecret, spawn → answer, its CPU time and peak RSS;
- 1 + N warm rotations in one function process, interleaved with 1 + N rotations by one floor
  process (the first of each is a warm-up, not recorded): wall time per step and the CPU time the
  process spent on each rotation (/proc/<pid>/task/*/schedstat);

then, at full CPU and without a cap, the instructions of one cold rotation and of one warm
rotation of the function and of the floor under valgrind's callgrind (the figures that a noisy
machine does not move), and the sizes of the x86_64 and arm64 artefacts that scripts/bench.sh
built with cargo lambda.

It prints the tables, each of the function's figures with the floor's beside it at every CPU
share, and writes the JSON results. Secrets and database users are the bench's own
(`dsr-bench/...`, `bench_...`), recreated for every share (the users by the harness, with the
integration suite's fixtures); no password is printed.

    bench.py --binary PATH --floor PATH --harness PATH [--runs N] [--out FILE] [--artifacts DIR]
             [--cpu-shares full,0.0724,...] [--instruction-runs N]
             [--engines postgres,mariadb,redis]
             [--strategies single-user,alternating-users,dual-password]

Reads the stack's variables (eval "$(scripts/stack.sh env)").
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpucap import CpuCap, share_of_memory  # noqa: E402

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
ENGINES = ("postgres", "mariadb", "redis")
STRATEGIES = ("single-user", "alternating-users", "dual-password")
# The engine and strategy pairs measured: each engine with the strategies the bench's users can
# take (a Redis single user would need ACL SETUSER on itself, which the bench does not give).
GROUPS = {
    ("postgres", "single-user"), ("postgres", "alternating-users"),
    ("mariadb", "single-user"), ("mariadb", "alternating-users"), ("mariadb", "dual-password"),
    ("redis", "dual-password"),
}
SHORT = {"postgres": "pg", "mariadb": "my", "redis": "rd", "single-user": "su",
         "alternating-users": "au", "dual-password": "dp"}
FAKE_LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:db-secret-rotator"
REPO = Path(__file__).resolve().parents[2]
# The default shares: the CPU Lambda gives at these memory sizes.
DEFAULT_MEMORY_MB = (128, 256, 512)

# Targets (docs/benchmarks.md): at full CPU on the project's 2-core machine...
TARGET_READY_MS = 15.0
TARGET_RSS_BYTES = 16_000_000
TARGET_RATIO = 1.2
TARGET_ARM64_ZIP_BYTES = 6_000_000
# ... and at the CPU share of a 128 MB function.
TARGET_SMALL_MEMORY_MB = 128
TARGET_SMALL_COLD_MS = 300.0
TARGET_SMALL_WARM_MS = 120.0
TARGET_SMALL_COLD_CPU_MS = 25.0
TARGET_SMALL_READY_MS = 50.0
TARGET_SMALL_RATIO = 1.1


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f'bench.py: {name} is not set: eval "$(scripts/stack.sh env)" first')
    return value


def stats(xs: list[float]) -> dict:
    xs = sorted(xs)
    if not xs:
        return {"n": 0}
    if len(xs) >= 2:
        deciles = statistics.quantiles(xs, n=10, method="inclusive")
        p10, p90 = deciles[0], deciles[-1]
    else:
        p10 = p90 = xs[0]
    r = lambda v: round(v, 3)  # noqa: E731
    return {"n": len(xs), "median": r(statistics.median(xs)), "min": r(xs[0]), "max": r(xs[-1]),
            "p10": r(p10), "p90": r(p90)}


# --------------------------------------------------------------------------------------------
# Database set-up: the servers' addresses from the stack's environment; users through the bench
# harness, which creates them with the integration suite's own fixtures (crates/testkit)


class Databases:
    def __init__(self, harness: "Harness") -> None:
        self.harness = harness
        self.pg = (env("DSR_PG_HOST"), int(env("DSR_PG_PORT")), env("DSR_PG_ADMIN_USER"),
                   env("DSR_PG_ADMIN_PASSWORD"))
        self.my = (env("DSR_MARIADB_HOST"), int(env("DSR_MARIADB_PORT")),
                   env("DSR_MARIADB_ADMIN_USER"), env("DSR_MARIADB_ADMIN_PASSWORD"))
        self.redis = (env("DSR_REDIS_HOST"), int(env("DSR_REDIS_PORT")),
                      env("DSR_REDIS_ADMIN_USER"), env("DSR_REDIS_ADMIN_PASSWORD"))

    def server(self, engine: str) -> tuple[str, int, str, str]:
        return {"postgres": self.pg, "mariadb": self.my, "redis": self.redis}[engine]

    def host_port(self, engine: str) -> tuple[str, int]:
        h = self.server(engine)
        return h[0], h[1]

    def admin(self, engine: str) -> tuple[str, str]:
        h = self.server(engine)
        return h[2], h[3]

    def reset_user(self, engine: str, user: str, password: str, clone_password: str | None) -> None:
        """(Re)creates `user` with `password`; with `clone_password`, also `<user>_clone` (else the
        clone is dropped, so the function's first alternating rotation creates it). The harness's
        `user` command; a Redis user gets `~bench:* +ping +get`."""
        line = f"user {engine} {user} {password}" + (f" {clone_password}" if clone_password else "")
        self.harness.command(line, "user")


# --------------------------------------------------------------------------------------------
# Secrets Manager set-up, straight to moto (not through the counting proxy)


class Secrets:
    def __init__(self, endpoint: str) -> None:
        import boto3  # comes with moto (scripts/stack.sh installs it)

        self.sm = boto3.client("secretsmanager", endpoint_url=endpoint,
                               region_name=os.environ.get("AWS_REGION", "us-east-1"))

    def create(self, name: str, value: dict) -> str:
        try:
            self.sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        except self.sm.exceptions.ResourceNotFoundException:
            pass
        return self.sm.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]

    def stages(self, arn: str) -> dict[str, list[str]]:
        return self.sm.describe_secret(SecretId=arn).get("VersionIdsToStages", {})

    def stage(self, arn: str) -> str:
        """Starts a rotation as the service does: a new token labelled AWSPENDING, no value."""
        for version, labels in self.stages(arn).items():
            if "AWSPENDING" in labels:  # lingering on the current version after a rotation
                self.sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING",
                                                    RemoveFromVersionId=version)
        token = str(uuid.uuid4())
        try:
            self.sm.rotate_secret(SecretId=arn, ClientRequestToken=token,
                                  RotationLambdaARN=FAKE_LAMBDA_ARN,
                                  RotationRules={"AutomaticallyAfterDays": 30})
        except self.sm.exceptions.ResourceNotFoundException:
            pass  # moto does not know the Lambda, but has staged the token (docs/protocol.md 7)
        if "AWSPENDING" not in self.stages(arn).get(token, []):
            sys.exit(f"bench.py: RotateSecret did not stage AWSPENDING on {token}")
        return token

    def check_finished(self, arn: str, token: str, who: str) -> None:
        if "AWSCURRENT" not in self.stages(arn).get(token, []):
            sys.exit(f"bench.py: {who}: token {token} is not AWSCURRENT after the rotation")


# --------------------------------------------------------------------------------------------
# The harness: Runtime API emulators and the counting Secrets Manager proxy


@dataclass
class Invocation:
    """One queued event and, once answered, what the function said and when (the emulator's
    clock readings, CLOCK_MONOTONIC like time.perf_counter_ns())."""

    id: int
    dispatched_ns: int = 0  # when GET /next handed it out
    answered_ns: int = 0  # when the response or error arrived
    ok: bool = False
    body: bytes = b""  # the error, when not ok
    done: threading.Event = field(default_factory=threading.Event)


class Harness:
    """bench/harness.rs, started once: the integration suite's Lambda Runtime API emulator (one
    per function process) and its counting proxy in front of moto, driven over a line protocol
    (the harness's doc comment describes it). Commands are answered in order; the outcome of an
    invocation arrives later, as a `done` line, which a reader thread hands to its Invocation."""

    def __init__(self, binary: str, log_path: Path) -> None:
        # Its stderr (the fixtures' notes, a failing fixture's panic) goes to its log.
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1)
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()  # guards the two maps below
        self._waiting: dict[int, Invocation] = {}
        self._early: dict[int, dict] = {}  # outcomes read before their `queued` reply
        self._apis: dict[int, RuntimeApi] = {}
        self._command_lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._expect(self._next_reply(), "proxy")

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("done "):
                self._finish(json.loads(line[5:]))
            else:
                self._replies.put(line.rstrip("\n"))
        self._replies.put(None)
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for inv in waiting.values():
            inv.body = b"the bench harness exited"
            inv.done.set()

    def _finish(self, outcome: dict) -> None:
        with self._lock:
            inv = self._waiting.pop(outcome["id"], None)
            if inv is None:
                self._early[outcome["id"]] = outcome
                return
        self._complete(inv, outcome)

    def _complete(self, inv: Invocation, outcome: dict) -> None:
        inv.dispatched_ns = outcome["dispatched_ns"] or 0
        inv.answered_ns = outcome["answered_ns"]
        inv.ok = outcome["ok"]
        inv.body = (outcome["error"] or "").encode()
        api = self._apis.get(outcome["api"])
        if api and outcome["first_poll_ns"]:
            api.first_next_ns = outcome["first_poll_ns"]
        inv.done.set()

    def _next_reply(self) -> str:
        try:
            reply = self._replies.get(timeout=30)
        except queue.Empty:
            reply = None
        if reply is None:
            sys.exit(f"bench.py: the bench harness did not answer (exit code {self.proc.poll()}; "
                     f"log: {self.log_path})")
        return reply

    @staticmethod
    def _expect(reply: str, verb: str) -> str:
        head, _, rest = reply.partition(" ")
        if head != verb:
            sys.exit(f"bench.py: the bench harness answered '{reply}'")
        return rest

    def command(self, line: str, verb: str) -> str:
        with self._command_lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            return self._expect(self._next_reply(), verb)

    def api(self) -> "RuntimeApi":
        n, address = self.command("api", "api").split(" ", 1)
        api = RuntimeApi(self, int(n), address)
        self._apis[api.n] = api
        return api

    def enqueue(self, api: "RuntimeApi", event: dict) -> Invocation:
        with self._command_lock:
            self.proc.stdin.write(f"enqueue {api.n} {json.dumps(event)}\n")
            self.proc.stdin.flush()
            inv = Invocation(int(self._expect(self._next_reply(), "queued")))
            with self._lock:
                early = self._early.pop(inv.id, None)
                if early is None:
                    self._waiting[inv.id] = inv
        if early is not None:
            self._complete(inv, early)
        return inv

    def take(self) -> dict:
        """The Secrets Manager operations since the previous take (one per SDK invocation id,
        however many attempts): {"operations": {name: count}, "retries": attempts beyond the
        first}."""
        return json.loads(self.command("take", "take"))

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class RuntimeApi:
    """One of the harness's Runtime API emulators: `address` is what AWS_LAMBDA_RUNTIME_API
    must be set to; `first_next_ns` is when the function first asked for an event."""

    def __init__(self, harness: Harness, n: int, address: str) -> None:
        self.harness, self.n, self.address = harness, n, address
        self.first_next_ns = 0

    def enqueue(self, event: dict) -> Invocation:
        """Queue an event (30-second deadline); the function picks it up with its next GET
        /next."""
        return self.harness.enqueue(self, event)

    def stop(self) -> None:
        self.harness.command(f"stop {self.n}", "stopped")


# --------------------------------------------------------------------------------------------
# Processes


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_ns(pid: int) -> int:
    """CPU time of a live process so far, in nanoseconds: the sum over its threads of the
    scheduler's run time (/proc/<pid>/task/<tid>/schedstat), finer than /proc's clock ticks."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended meanwhile
    return total


def reap(proc: subprocess.Popen, timeout_s: float = 30.0) -> float:
    """Waits for `proc` to end (SIGKILL after `timeout_s`) and returns its whole CPU time in
    milliseconds, user + system, every thread included (wait4's rusage)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return (usage.ru_utime + usage.ru_stime) * 1000
        if time.monotonic() > deadline:
            proc.kill()
            deadline = float("inf")
        time.sleep(0.005)


@dataclass
class Launch:
    """How the processes of one pass are started: capped or not, or under callgrind."""

    cap: CpuCap | None = None
    callgrind_dir: Path | None = None

    @property
    def memory_mb(self) -> int:
        """The Lambda memory size this pass stands for (full CPU: the template's default)."""
        return round(self.cap.share * 1769) if self.cap else 256

    def argv(self, binary: str, name: str) -> list[str]:
        argv = [binary]
        if self.callgrind_dir:
            argv = ["valgrind", "--tool=callgrind", "--quiet",
                    f"--callgrind-out-file={self.callgrind_dir}/{name}.%p.out", *argv]
        return self.cap.wrap(argv) if self.cap else argv


def function_env(runtime_api: str, sm_endpoint: str, memory_mb: int = 256) -> dict[str, str]:
    """What Lambda gives the function (provided.al2023, JSON logs at INFO, as template.yaml sets
    it), plus the stack's endpoint, dummy credentials and test CA."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": "db-secret-rotator",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/db-secret-rotator",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_ACCESS_KEY_ID": env("AWS_ACCESS_KEY_ID"),
        "AWS_SECRET_ACCESS_KEY": env("AWS_SECRET_ACCESS_KEY"),
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": sm_endpoint,
        "TLS_EXTRA_CA_FILE": env("DSR_TEST_CA"),
        "TZ": ":UTC",
    }


class Function:
    """One function process under a fresh emulator (a killed process's pending GET /next must not
    take the next process's event)."""

    def __init__(self, binary: str, sm_endpoint: str, log_path: Path, launch: Launch,
                 harness: Harness) -> None:
        self.api = harness.api()
        self.binary, self.sm_endpoint, self.log_path = binary, sm_endpoint, log_path
        self.launch = launch
        self.proc: subprocess.Popen | None = None
        self.spawned_ns = 0

    def spawn(self) -> None:
        self.log = open(self.log_path, "ab")
        environment = function_env(self.api.address, self.sm_endpoint, self.launch.memory_mb)
        argv = self.launch.argv(self.binary, "function")
        self.spawned_ns = time.perf_counter_ns()
        self.proc = subprocess.Popen(argv, env=environment, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def step(self, step: str, arn: str, token: str):
        inv = self.api.enqueue({"Step": step, "SecretId": arn, "ClientRequestToken": token})
        return self.wait(inv, step)

    def wait(self, inv, step: str):
        deadline = time.monotonic() + 120
        while not inv.done.wait(0.05):
            if self.proc.poll() is not None:
                sys.exit(f"bench.py: the function exited ({self.proc.returncode}) during {step}; "
                         f"log: {self.log_path}")
            if time.monotonic() > deadline:
                sys.exit(f"bench.py: no answer to {step} within 120 s; log: {self.log_path}")
        if not inv.ok:
            sys.exit(f"bench.py: {step} failed: {inv.body.decode(errors='replace')}; "
                     f"log: {self.log_path}")
        return inv

    def rotate(self, arn: str, token: str, first=None) -> list:
        """The four steps' invocations; `first` is an already queued createSecret."""
        done = []
        for step in STEPS:
            if step == "createSecret" and first is not None:
                done.append(self.wait(first, step))
            else:
                done.append(self.step(step, arn, token))
        return done

    def cpu_ms(self) -> float:
        return cpu_ns(self.proc.pid) / 1e6

    def stop(self) -> tuple[int, float]:
        """Reads the peak RSS (KiB), stops the process (SIGTERM, so that a profiler wrapping the
        binary can write out) and returns (peak RSS, its whole CPU time in ms)."""
        rss = peak_rss_kib(self.proc.pid)
        self.proc.terminate()
        cpu = reap(self.proc)
        self.log.close()
        self.api.stop()
        return rss, cpu


def step_times(invocations) -> dict[str, float]:
    """Each step's wall time, from the emulator handing out the event to the response."""
    return {step: (inv.answered_ns - inv.dispatched_ns) / 1e6
            for step, inv in zip(STEPS, invocations)}


class Floor:
    """One floor process; `request` (if given) is written before anything else, so that spawn →
    answer is the floor's cold rotation. The floor writes `{"ready_ns"}` once set up (its
    counterpart of the function's first GET /next, on CLOCK_REALTIME), then one answer per
    request."""

    def __init__(self, binary: str, sm_endpoint: str, log_path: Path, launch: Launch,
                 request: dict | None = None) -> None:
        environment = {k: v for k, v in function_env("", sm_endpoint).items()
                       if not k.startswith("AWS_LAMBDA_")}
        self.log = open(log_path, "ab")
        argv = launch.argv(binary, "floor")
        self.ready_ns = 0
        # The floor's own clock readings are CLOCK_REALTIME's (time.time_ns()).
        self.spawned_unix_ns = time.time_ns()
        self.spawned_ns = time.perf_counter_ns()
        self.proc = subprocess.Popen(argv, env=environment, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        if request:
            self._send(request)

    def _send(self, request: dict) -> None:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def _line(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"bench.py: the floor exited ({self.proc.wait()})")
        return json.loads(line)

    def answer(self) -> dict:
        answer = self._line()
        if "ready_ns" in answer:
            self.ready_ns = answer["ready_ns"]
            answer = self._line()
        if not answer.get("ok"):
            sys.exit(f"bench.py: the floor failed: {answer.get('error')}")
        return answer

    def rotate(self, arn: str, token: str, strategy: str) -> dict:
        self._send({"secret_id": arn, "token": token, "strategy": strategy})
        return self.answer()

    def cpu_ms(self) -> float:
        return cpu_ns(self.proc.pid) / 1e6

    def stop(self) -> tuple[int, float]:
        """(peak RSS in KiB, whole CPU time in ms); the floor exits when its stdin closes."""
        rss = peak_rss_kib(self.proc.pid)
        self.proc.stdin.close()
        cpu = reap(self.proc)
        self.log.close()
        return rss, cpu


def emf_durations(log_path: Path) -> list[dict]:
    """The function's own EMF metric lines (src/metrics.rs), in order."""
    out = []
    for raw in log_path.read_bytes().splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and "_aws" in line:
            out.append(line)
    return out


# --------------------------------------------------------------------------------------------
# One engine and strategy


@dataclass
class Group:
    """One engine and strategy, with a secret (and database user) for the function and one for
    the floor."""

    engine: str
    strategy: str
    fn_arn: str
    floor_arn: str

    @property
    def tag(self) -> str:
        return f"{SHORT[self.engine]}-{SHORT[self.strategy]}"

    @property
    def floor_request(self) -> dict:
        return {"secret_id": self.floor_arn, "strategy": self.strategy}


def set_up_group(engine: str, strategy: str, dbs: Databases, sm: Secrets) -> Group:
    log(f"{engine} {strategy}: set-up")
    host, port = dbs.host_port(engine)
    alternating = strategy == "alternating-users"
    mastered = alternating or strategy == "dual-password"
    masterarn = None
    if mastered:
        admin_user, admin_pw = dbs.admin(engine)
        master = {"engine": engine, "host": host, "port": port, "username": admin_user,
                  "password": admin_pw, "ssl": True}
        if engine == "postgres":
            master["dbname"] = "postgres"
        # One master secret per group: a second group of the engine must not recreate the first's.
        masterarn = sm.create(f"dsr-bench/{engine}/{strategy}/master", master)

    arns = {}
    for who in ("fn", "floor"):
        user = f"bench_{SHORT[engine]}_{SHORT[strategy]}_{who}"
        password = secrets.token_hex(16)
        clone_pw = secrets.token_hex(16) if alternating and who == "floor" else None
        dbs.reset_user(engine, user, password, clone_pw)
        value = {"engine": engine, "host": host, "port": port, "username": user,
                 "password": password, "ssl": True}
        if engine == "postgres":
            value["dbname"] = "postgres"
        if mastered:
            value["masterarn"] = masterarn
            value["rotation_strategy"] = strategy
        arns[who] = sm.create(f"dsr-bench/{engine}/{strategy}/{who}", value)
    return Group(engine, strategy, arns["fn"], arns["floor"])


def bench_group(g: Group, args, launch: Launch, sm: Secrets, harness: Harness, moto: str,
                logdir: Path) -> dict:
    """Cold and warm rotations of the function and the floor, started per `launch`."""
    label = f"{g.engine} {g.strategy}" + (f" at {launch.cap.share:.4f} CPU" if launch.cap else "")
    tag = g.tag + (f"-{launch.memory_mb}mb" if launch.cap else "")

    # Cold rotations, through the counting proxy, each followed by a cold floor rotation.
    ready, first_response, cold_total, cold_cpu, cold_rss, fn_calls, fn_retries, fn_ops = \
        [], [], [], [], [], [], [], {}
    floor_cold, floor_cold_cpu, floor_ops = [], [], {}
    floor_ready, floor_first, floor_cold_rss = [], [], []
    log(f"{label}: {args.runs} cold rotations of the function and of the floor")
    for i in range(args.runs):
        token = sm.stage(g.fn_arn)
        harness.take()
        f = Function(args.binary, harness.url, logdir / f"{tag}-cold.log", launch, harness)
        first = f.api.enqueue({"Step": "createSecret", "SecretId": g.fn_arn,
                               "ClientRequestToken": token})
        f.spawn()
        done = f.rotate(g.fn_arn, token, first=first)
        ready.append((f.api.first_next_ns - f.spawned_ns) / 1e6)
        first_response.append((first.answered_ns - f.spawned_ns) / 1e6)
        cold_total.append((done[-1].answered_ns - f.spawned_ns) / 1e6)
        rss, cpu = f.stop()
        cold_rss.append(rss)
        cold_cpu.append(cpu)
        taken = harness.take()
        fn_ops = taken["operations"]
        fn_calls.append(sum(fn_ops.values()))
        fn_retries.append(taken["retries"])
        sm.check_finished(g.fn_arn, token, "function")

        token = sm.stage(g.floor_arn)
        floor = Floor(args.floor, harness.url, logdir / f"{tag}-floor.log", launch,
                      {**g.floor_request, "token": token})
        answer = floor.answer()
        floor_cold.append((time.perf_counter_ns() - floor.spawned_ns) / 1e6)
        floor_ready.append((floor.ready_ns - floor.spawned_unix_ns) / 1e6)
        floor_first.append((answer["started_ns"] - floor.spawned_unix_ns) / 1e6
                           + answer["steps"]["createSecret"])
        rss, cpu = floor.stop()
        floor_cold_rss.append(rss)
        floor_cold_cpu.append(cpu)
        floor_ops = harness.take()["operations"]
        sm.check_finished(g.floor_arn, token, "floor")

    # Warm rotations, straight to moto, interleaved with the floor's.
    log(f"{label}: 1 + {args.runs} warm rotations and floor rotations")
    warm_log = logdir / f"{tag}-warm.log"
    f = Function(args.binary, moto, warm_log, launch, harness)
    f.spawn()
    floor = Floor(args.floor, moto, logdir / f"{tag}-floor.log", launch)
    warm, warm_cpu, floor_runs, floor_cpu = [], [], [], []
    for i in range(args.runs + 1):
        order = ("fn", "floor") if i % 2 == 0 else ("floor", "fn")
        for who in order:
            if who == "fn":
                token = sm.stage(g.fn_arn)
                before = f.cpu_ms()
                times = step_times(f.rotate(g.fn_arn, token))
                cpu = f.cpu_ms() - before
                sm.check_finished(g.fn_arn, token, "function")
                if i > 0:
                    warm.append(times)
                    warm_cpu.append(cpu)
            else:
                token = sm.stage(g.floor_arn)
                before = floor.cpu_ms()
                answer = floor.rotate(g.floor_arn, token, g.strategy)
                cpu = floor.cpu_ms() - before
                sm.check_finished(g.floor_arn, token, "floor")
                if i > 0:
                    floor_runs.append(answer)
                    floor_cpu.append(cpu)
    warm_rss, _ = f.stop()
    floor_rss, _ = floor.stop()

    # The function's own view of each warm step (its EMF Duration), warm-up excluded.
    emf = [m for m in emf_durations(warm_log) if m.get("Step") in STEPS][-4 * args.runs:]
    handler_totals = [sum(m["Duration"] for m in emf[i:i + 4]) for i in range(0, len(emf), 4)]

    warm_totals = [sum(t.values()) for t in warm]
    floor_totals = [a["total_ms"] for a in floor_runs]
    ratio = statistics.median(warm_totals) / statistics.median(floor_totals)
    cpu_ratio = statistics.median(warm_cpu) / statistics.median(floor_cpu)
    return {
        "engine": g.engine,
        "strategy": g.strategy,
        "cold_ready_ms": stats(ready),
        "cold_first_response_ms": stats(first_response),
        "cold_rotation_ms": stats(cold_total),
        "cold_cpu_ms": stats(cold_cpu),
        "warm_step_ms": {s: stats([t[s] for t in warm]) for s in STEPS},
        "warm_total_ms": stats(warm_totals),
        "warm_cpu_ms": stats(warm_cpu),
        "warm_handler_total_ms": stats(handler_totals),
        "floor_cold_ready_ms": stats(floor_ready),
        "floor_cold_first_response_ms": stats(floor_first),
        "floor_cold_rotation_ms": stats(floor_cold),
        "floor_cold_cpu_ms": stats(floor_cold_cpu),
        "floor_step_ms": {s: stats([a["steps"][s] for a in floor_runs]) for s in STEPS},
        "floor_total_ms": stats(floor_totals),
        "floor_cpu_ms": stats(floor_cpu),
        "ratio_to_floor": round(ratio, 3),
        "cpu_ratio_to_floor": round(cpu_ratio, 3),
        "peak_rss_kib": {"cold_max": max(cold_rss), "cold_median": statistics.median(cold_rss),
                         "warm": warm_rss, "floor": floor_rss,
                         "floor_cold_max": max(floor_cold_rss)},
        "sm_calls": {
            "function_per_rotation": fn_calls,
            "function_retries_per_rotation": fn_retries,
            "function_by_operation": fn_ops,
            "floor_per_rotation": sum(floor_ops.values()),
            "floor_by_operation": floor_ops,
        },
    }


def run_pass(share: float | None, groups: list[Group], args, sm: Secrets, harness: Harness,
             moto: str, logdir: Path) -> dict:
    """Every group at one CPU share (None: full CPU, no cgroup)."""
    cap = CpuCap(share) if share is not None else None
    try:
        launch = Launch(cap=cap)
        results = [bench_group(g, args, launch, sm, harness, moto, logdir) for g in groups]
        throttling = cap.throttled() if cap else None
    finally:
        if cap:
            cap.close()
    return {"cpu_share": share, "memory_mb": launch.memory_mb if cap else None,
            "cgroup": cap.version if cap else None, "throttling": throttling, "groups": results}


# --------------------------------------------------------------------------------------------
# Instructions (valgrind's callgrind)


def callgrind_total(out_file: Path) -> int:
    for line in out_file.read_text(errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise ValueError(f"no totals in {out_file}")


def callgrind_dump(pid: int) -> None:
    """Has callgrind in process `pid` write out its counts so far, then count again from zero
    (callgrind_control, through valgrind's gdbserver, which reaches a process blocked waiting
    for its next event or request)."""
    out = subprocess.run(["callgrind_control", "--dump", str(pid)], capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        sys.exit(f"bench.py: callgrind_control --dump {pid} failed: "
                 f"{(out.stderr or out.stdout).strip()}")


def callgrind_dumps(directory: Path, name: str, pid: int) -> list[int]:
    """The totals of the dumps `callgrind_dump` made of process `pid`, in order."""
    files = [f for f in directory.glob(f"{name}.{pid}.out.*") if f.suffix[1:].isdigit()]
    return [callgrind_total(f) for f in sorted(files, key=lambda f: int(f.suffix[1:]))]


def count_instructions(g: Group, args, sm: Secrets, harness: Harness, moto: str,
                       logdir: Path) -> dict:
    """Instructions at full CPU, straight to moto, every thread, the dynamic loader and libc
    included. Cold: one rotation in a fresh process, the function from exec to being stopped
    after the fourth response, the floor from exec to its exit after one rotation. Warm: one
    process each, a first rotation (not counted), then `instruction_runs` rotations, callgrind's
    counts written out after each: from one rotation's last response to the next's, the Runtime
    API's round trips included."""
    fn_counts, floor_counts = [], []
    with tempfile.TemporaryDirectory(prefix="dsr-callgrind-") as tmp:
        launch = Launch(callgrind_dir=Path(tmp))
        for i in range(args.instruction_runs):
            token = sm.stage(g.fn_arn)
            f = Function(args.binary, moto, logdir / f"{g.tag}-callgrind.log", launch, harness)
            first = f.api.enqueue({"Step": "createSecret", "SecretId": g.fn_arn,
                                   "ClientRequestToken": token})
            f.spawn()
            f.rotate(g.fn_arn, token, first=first)
            f.stop()
            sm.check_finished(g.fn_arn, token, "function under callgrind")
            out = next(Path(tmp).glob(f"function.{f.proc.pid}.out"))
            fn_counts.append(callgrind_total(out))

            token = sm.stage(g.floor_arn)
            floor = Floor(args.floor, moto, logdir / f"{g.tag}-callgrind.log", launch,
                          {**g.floor_request, "token": token})
            floor.answer()
            floor.stop()
            sm.check_finished(g.floor_arn, token, "floor under callgrind")
            out = next(Path(tmp).glob(f"floor.{floor.proc.pid}.out"))
            floor_counts.append(callgrind_total(out))

        f = Function(args.binary, moto, logdir / f"{g.tag}-callgrind.log", launch, harness)
        f.spawn()
        floor = Floor(args.floor, moto, logdir / f"{g.tag}-callgrind.log", launch)
        for i in range(args.instruction_runs + 1):
            token = sm.stage(g.fn_arn)
            f.rotate(g.fn_arn, token)
            sm.check_finished(g.fn_arn, token, "function under callgrind")
            callgrind_dump(f.proc.pid)
            token = sm.stage(g.floor_arn)
            floor.rotate(g.floor_arn, token, g.strategy)
            sm.check_finished(g.floor_arn, token, "floor under callgrind")
            callgrind_dump(floor.proc.pid)
        f.stop()
        floor.stop()
        fn_warm = callgrind_dumps(Path(tmp), "function", f.proc.pid)[1:]
        floor_warm = callgrind_dumps(Path(tmp), "floor", floor.proc.pid)[1:]
    return {"engine": g.engine, "strategy": g.strategy,
            "function_cold_rotation": stats(fn_counts), "floor_cold_rotation": stats(floor_counts),
            "function_warm_rotation": stats(fn_warm), "floor_warm_rotation": stats(floor_warm)}


# --------------------------------------------------------------------------------------------
# Sizes and the machine


def sizes(artifacts: Path | None) -> dict:
    out = {}
    for arch in ("x86_64", "arm64"):
        d = artifacts / arch if artifacts else None
        if d is None or not (d / "bootstrap.zip").exists():
            reason = (d / "unavailable").read_text().strip() if d and (d / "unavailable").exists() \
                else "not built"
            out[arch] = {"available": False, "reason": reason}
            continue
        zip_path = d / "bootstrap.zip"
        with zipfile.ZipFile(zip_path) as z:
            info = z.getinfo("bootstrap")
        out[arch] = {"available": True, "binary_bytes": info.file_size,
                     "zip_bytes": zip_path.stat().st_size}
    return out


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    os_name = ""
    try:
        os_name = re.search(r'PRETTY_NAME="([^"]*)"', open("/etc/os-release").read()).group(1)
    except (OSError, AttributeError):
        pass

    def cmd(*c: str) -> str:
        try:
            return subprocess.run(c, capture_output=True, text=True, cwd=REPO).stdout.strip()
        except OSError:
            return ""

    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": os_name,
        "kernel": platform.release(),
        "rustc": cmd("rustc", "--version"),
        "commit": cmd("git", "rev-parse", "--short", "HEAD"),
        "dirty": bool(cmd("git", "status", "--porcelain", "--untracked-files=no")),
        "load_average": os.getloadavg(),
    }


# --------------------------------------------------------------------------------------------
# Output


def fmt(s: dict, digits: int = 1) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def med(s: dict, digits: int = 1) -> str:
    return f"{s['median']:.{digits}f}" if s and s.get("n") else "-"


def pass_label(p: dict) -> str:
    return "full CPU" if p["cpu_share"] is None else \
        f"{p['cpu_share']:.4f} ({p['memory_mb']} MB)"


def is_small(p: dict) -> bool:
    return p["cpu_share"] is not None and p["memory_mb"] == TARGET_SMALL_MEMORY_MB


def targets(result: dict) -> list[dict]:
    out = []
    full = next((p for p in result["passes"] if p["cpu_share"] is None), None)
    if full:
        groups = full["groups"]
        worst_ready = max(g["cold_ready_ms"]["median"] for g in groups)
        out.append({"target": f"full CPU: spawn to ready < {TARGET_READY_MS:g} ms "
                              "(median, every group)",
                    "measured": f"{worst_ready:.1f} ms", "met": worst_ready < TARGET_READY_MS})
        worst_rss = max(max(g["peak_rss_kib"]["cold_max"], g["peak_rss_kib"]["warm"])
                        for g in groups)
        out.append({"target": f"full CPU: peak RSS <= {TARGET_RSS_BYTES / 1e6:g} MB "
                              "(every process)",
                    "measured": f"{worst_rss * 1024 / 1e6:.1f} MB",
                    "met": worst_rss * 1024 <= TARGET_RSS_BYTES})
        worst_ratio = max(g["ratio_to_floor"] for g in groups)
        out.append({"target": f"full CPU: warm rotation <= {TARGET_RATIO:g} x floor "
                              "(median, every group)",
                    "measured": f"{worst_ratio:.2f} x", "met": worst_ratio <= TARGET_RATIO})
        single = [g for g in groups if g["strategy"] == "single-user"]
        calls = sorted({c for g in single for c in g["sm_calls"]["function_per_rotation"]})
        out.append({"target": "11 Secrets Manager calls per single-user rotation",
                    "measured": ", ".join(map(str, calls)) or "-", "met": calls == [11]})
    small = next((p for p in result["passes"] if is_small(p)), None)
    share = f"{share_of_memory(TARGET_SMALL_MEMORY_MB):.4f} CPU"
    for key, limit, what in (("cold_rotation_ms", TARGET_SMALL_COLD_MS, "cold rotation"),
                             ("warm_total_ms", TARGET_SMALL_WARM_MS, "warm rotation"),
                             ("cold_cpu_ms", TARGET_SMALL_COLD_CPU_MS, "CPU per cold rotation")):
        target = f"{share}: {what} <= {limit:g} ms (median, every group)"
        if small:
            worst = max(g[key]["median"] for g in small["groups"])
            out.append({"target": target, "measured": f"{worst:.1f} ms", "met": worst <= limit})
        else:
            out.append({"target": target, "measured": result.get("cgroup_unavailable")
                        or "not measured", "met": None})
    for what, limit, unit, measure in (
            (f"spawn to ready <= {TARGET_SMALL_READY_MS:g} ms (median, every group)",
             TARGET_SMALL_READY_MS, "ms", lambda g: g["cold_ready_ms"]["median"]),
            (f"warm rotation <= {TARGET_SMALL_RATIO:g} x the floor of the same run "
             "(medians, every group)", TARGET_SMALL_RATIO, "x", lambda g: g["ratio_to_floor"])):
        target = f"{share}: {what}"
        if small:
            worst = max(measure(g) for g in small["groups"])
            out.append({"target": target, "measured": f"{worst:.2f} {unit}",
                        "met": worst <= limit})
        else:
            out.append({"target": target, "measured": result.get("cgroup_unavailable")
                        or "not measured", "met": None})
    arm = result["sizes"].get("arm64", {})
    if arm.get("available"):
        out.append({"target": f"arm64 zip < {TARGET_ARM64_ZIP_BYTES / 1e6:g} MB",
                    "measured": f"{arm['zip_bytes'] / 1e6:.2f} MB",
                    "met": arm["zip_bytes"] < TARGET_ARM64_ZIP_BYTES})
    else:
        out.append({"target": f"arm64 zip < {TARGET_ARM64_ZIP_BYTES / 1e6:g} MB",
                    "measured": f"unavailable ({arm.get('reason', 'not built')})", "met": None})
    return out


def pass_tables(p: dict) -> list[str]:
    """One CPU share's figures, the floor's beside each of the function's."""
    label = pass_label(p)
    rows = [("engine", "strategy", "spawn->ready", "floor", "spawn->1st resp", "floor",
             "cold rotation", "floor", "cold CPU", "floor", "peak RSS MB", "floor")]
    for g in p["groups"]:
        rss = max(g["peak_rss_kib"]["cold_max"], g["peak_rss_kib"]["warm"]) * 1024 / 1e6
        floor_rss = max(g["peak_rss_kib"].get("floor_cold_max", 0),
                        g["peak_rss_kib"]["floor"]) * 1024 / 1e6
        rows.append((g["engine"], g["strategy"], fmt(g["cold_ready_ms"], 2),
                     fmt(g.get("floor_cold_ready_ms", {}), 2), fmt(g["cold_first_response_ms"]),
                     fmt(g.get("floor_cold_first_response_ms", {})), fmt(g["cold_rotation_ms"]),
                     fmt(g["floor_cold_rotation_ms"]), med(g["cold_cpu_ms"]),
                     med(g["floor_cold_cpu_ms"]), f"{rss:.1f}", f"{floor_rss:.1f}"))
    lines = [f"{label}: cold, a fresh process per rotation (wall time median [min-max], CPU time "
             "median, ms; peak RSS the largest process)"]
    lines += render(rows)
    lines.append("")
    rows = [("engine", "strategy", "warm rotation", "floor", "ratio", "warm CPU", "floor",
             "ratio", "in handler", "SM calls")]
    for g in p["groups"]:
        calls = sorted(set(g["sm_calls"]["function_per_rotation"]))
        rows.append((g["engine"], g["strategy"], fmt(g["warm_total_ms"]),
                     fmt(g["floor_total_ms"]), f"{g['ratio_to_floor']:.2f}",
                     med(g["warm_cpu_ms"], 2), med(g["floor_cpu_ms"], 2),
                     f"{g.get('cpu_ratio_to_floor', 0):.2f}", fmt(g["warm_handler_total_ms"]),
                     f"{'/'.join(map(str, calls))} (floor {g['sm_calls']['floor_per_rotation']})"))
    lines.append(f"{label}: warm, one process, interleaved with the floor's (\"in handler\": the "
                 "sum of the function's own EMF Duration)")
    lines += render(rows)
    lines.append("")
    rows = [("engine", "strategy", *(h for s in STEPS for h in (s, "floor")))]
    for g in p["groups"]:
        cells = []
        for s in STEPS:
            cells += [fmt(g["warm_step_ms"][s]), fmt(g["floor_step_ms"][s])]
        rows.append((g["engine"], g["strategy"], *cells))
    lines.append(f"{label}: warm steps, as the runtime emulator sees them; the floor's as it "
                 "times them")
    lines += render(rows)
    return lines


def cost_table(passes: list[dict]) -> list[str]:
    """What Lambda bills per rotation at each memory size: memory x duration, in GB-ms (the
    medians; a cold rotation's init is billed too, since the function is a custom runtime)."""
    rows = [("memory", "CPU share", "cold GB-ms (worst group)", "warm GB-ms (worst group)")]
    for p in passes:
        if p["cpu_share"] is None:
            continue
        gb = p["memory_mb"] / 1024
        cold = max(g["cold_rotation_ms"]["median"] for g in p["groups"]) * gb
        warm = max(g["warm_total_ms"]["median"] for g in p["groups"]) * gb
        rows.append((f"{p['memory_mb']} MB", f"{p['cpu_share']:.4f}", f"{cold:.1f}",
                     f"{warm:.1f}"))
    if len(rows) == 1:
        return []
    return ["billed memory x duration per rotation (the template's MemorySize choice)"] + \
        render(rows)


def instruction_table(counts: list[dict]) -> list[str]:
    rows = [("engine", "strategy", "cold", "floor", "ratio", "warm", "floor", "ratio")]
    for c in counts:
        cells = []
        for kind in ("cold", "warm"):
            fn, fl = c.get(f"function_{kind}_rotation", {}), c.get(f"floor_{kind}_rotation", {})
            if fn.get("n") and fl.get("n"):
                cells += [f"{fn['median'] / 1e6:.1f} M", f"{fl['median'] / 1e6:.1f} M",
                          f"{fn['median'] / fl['median']:.2f}"]
            else:
                cells += ["-", "-", "-"]
        rows.append((c["engine"], c["strategy"], *cells))
    n = counts[0]["function_cold_rotation"]["n"]
    return ([f"instructions per rotation (callgrind, full CPU, median of {n}; cold: exec to the "
             "last response; warm: one rotation of a warm process; every thread)"]
            + render(rows))


def table(result: dict) -> str:
    lines = []
    m = result["machine"]
    lines.append(f"db-secret-rotator bench: {result['runs']} runs per figure, commit {m['commit']}"
                 f"{' (dirty)' if m['dirty'] else ''}, {m['cpus']} CPUs ({m['cpu_model']}), "
                 f"{m['os']}, load average {m['load_average'][0]:.2f} at the start")
    lines.append("median [min-max], milliseconds unless stated")
    lines.append("")
    for p in result["passes"]:
        lines += pass_tables(p)
        lines.append("")
    if result.get("cgroup_unavailable"):
        lines.append(f"CPU shares not measured: {result['cgroup_unavailable']}")
    lines.append("")
    costs = cost_table(result["passes"])
    if costs:
        lines += costs + [""]
    if result["instructions"]:
        lines += instruction_table(result["instructions"])
    else:
        lines.append(f"instructions not counted: {result['instructions_skipped']}")
    lines.append("")
    rows = [("architecture", "bootstrap", "bootstrap.zip")]
    for arch, s in result["sizes"].items():
        if s.get("available"):
            rows.append((arch, f"{s['binary_bytes']:,} B ({s['binary_bytes'] / 1e6:.1f} MB)",
                         f"{s['zip_bytes']:,} B ({s['zip_bytes'] / 1e6:.2f} MB)"))
        else:
            rows.append((arch, "unavailable", s.get("reason", "")))
    lines += render(rows)
    lines.append("")
    for t in result["targets"]:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        lines.append(f"  {verdict:6s} {t['target']}: {t['measured']}")
    return "\n".join(lines)


def render(rows: list[tuple]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def parse_shares(text: str) -> list[float | None]:
    """"full,0.0724,128mb" → [None, 0.0724, 128 / 1769]; "default" → full CPU and the
    128/256/512 MB shares."""
    out: list[float | None] = []
    for item in text.split(","):
        item = item.strip().lower()
        if item == "default":
            out += [None, *(share_of_memory(mb) for mb in DEFAULT_MEMORY_MB)]
        elif item in ("full", "1", "1.0"):
            out.append(None)
        elif item.endswith("mb") and item[:-2].isdigit():
            out.append(share_of_memory(int(item[:-2])))
        else:
            try:
                share = float(item)
            except ValueError:
                sys.exit(f"bench.py: CPU share '{item}' is not a number, 'full' or 'default'")
            if not 0.01 <= share < 1:
                sys.exit(f"bench.py: CPU share {share} is out of range (0.01 to 1; 1 is 'full')")
            out.append(share)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--floor", required=True)
    ap.add_argument("--harness", required=True,
                    help="the bench harness (bench/harness.rs): emulators and counting proxy")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", default=str(REPO / ".stack" / "bench" / "results.json"))
    ap.add_argument("--artifacts", default=None, help="directory with <arch>/bootstrap.zip")
    ap.add_argument("--cpu-shares", default="default",
                    help="comma-separated: 'full', a fraction of one CPU, a Lambda memory size "
                         "('128mb'), or 'default' (full and the shares of 128, 256 and 512 MB)")
    ap.add_argument("--instruction-runs", type=int, default=3,
                    help="cold rotations counted under callgrind per group (0: none)")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    args = ap.parse_args()
    if args.runs < 1:
        sys.exit("bench.py: --runs must be at least 1")
    shares = parse_shares(args.cpu_shares)

    # Cgroups first: a machine that does not allow them is said so before anything runs.
    cgroup_unavailable = None
    if any(s is not None for s in shares):
        cgroup_unavailable = CpuCap.probe()
        if cgroup_unavailable:
            if args.cpu_shares != "default":
                sys.exit(f"bench.py: cannot cap the CPU on this machine: {cgroup_unavailable}")
            log(f"CPU shares NOT measured: {cgroup_unavailable}")
            shares = [s for s in shares if s is None]
    instructions_skipped = None
    if args.instruction_runs < 1:
        instructions_skipped = "--instruction-runs 0"
    elif not shutil.which("valgrind"):
        instructions_skipped = "valgrind is not installed"
        log(f"instructions NOT counted: {instructions_skipped}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    logdir = out.parent / "logs"
    logdir.mkdir(exist_ok=True)
    for old in logdir.glob("*.log"):
        old.unlink()

    moto = env("AWS_ENDPOINT_URL_SECRETS_MANAGER")
    harness = Harness(args.harness, logdir / "harness.log")
    sm = Secrets(moto)
    started = time.monotonic()
    load_at_start = machine()
    passes, instructions = [], []
    dbs = Databases(harness)
    pairs = [(e, s) for e in args.engines.split(",") for s in args.strategies.split(",")
             if (e, s) in GROUPS]
    for share in shares:
        groups = [set_up_group(e, s, dbs, sm) for e, s in pairs]
        passes.append(run_pass(share, groups, args, sm, harness, moto, logdir))
    if not instructions_skipped:
        groups = [set_up_group(e, s, dbs, sm) for e, s in pairs]
        log(f"instructions of {args.instruction_runs} cold rotation(s) per group (callgrind)")
        instructions = [count_instructions(g, args, sm, harness, moto, logdir)
                        for g in groups]
    harness.stop()

    result = {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "runs": args.runs,
        "seconds": round(time.monotonic() - started, 1),
        "machine": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "binary": os.path.relpath(args.binary, REPO),
        "passes": passes,
        "cgroup_unavailable": cgroup_unavailable,
        "instructions": instructions,
        "instructions_skipped": instructions_skipped,
        "sizes": sizes(Path(args.artifacts) if args.artifacts else None),
    }
    result["targets"] = targets(result)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nresults: {out}  (logs: {logdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
