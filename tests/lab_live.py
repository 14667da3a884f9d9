"""Helpers of the live lab tests in tests/test_partial_runs.py: a process sampler that
runs inside the lab container during an SSH run, the secrets scan of what it saw, and
streaming clients through the gateway. Standard library only; unit-tested in
tests/test_lab_live_helpers.py without a lab host."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# Runs inside the container (its python3, as root): every INTERVAL s, every process's
# command line and environment, with its uid and cgroup; a process is written once per
# distinct (pid, cmdline, environ), each snapshot as one JSON line. Ends at EOF on stdin
# (the control node closes it; killing `docker exec` would not end it) or after LIMIT s.
# It knows no secret: the scan runs on the control node.
SAMPLER = r"""
import json, os, select, sys, time
interval, limit = float(sys.argv[1]), float(sys.argv[2])
me, seen, number, end = os.getpid(), set(), 0, time.monotonic() + limit

def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None

while time.monotonic() < end:
    number += 1
    new, count = [], 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        cmdline = read(f"/proc/{name}/cmdline")
        if not cmdline:
            continue  # a kernel thread, or gone
        environ = read(f"/proc/{name}/environ") or b""
        count += 1
        key = hash((name, cmdline, environ))
        if key in seen:
            continue
        seen.add(key)
        try:
            uid = os.stat(f"/proc/{name}").st_uid
        except OSError:
            uid = -1
        new.append({
            "pid": int(name),
            "uid": uid,
            "cgroup": (read(f"/proc/{name}/cgroup") or b"").decode("utf-8", "replace"),
            "cmdline": cmdline.decode("utf-8", "replace").rstrip("\0").split("\0"),
            "environ": [e for e in environ.decode("utf-8", "replace").split("\0") if e],
        })
    line = {"snapshot": number, "time": time.time(), "processes": count, "new": new}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    ready, _, _ = select.select([sys.stdin], [], [], interval)
    if ready and not os.read(sys.stdin.fileno(), 4096):
        break
"""

# What shows that the sampler saw the SSH run itself (Mitogen's interpreters and its
# become through sudo, or Ansible's modules), so the scan cannot pass on snapshots that
# missed it.
ANSIBLE_MARKS = ("mitogen", "BECOME-SUCCESS-", "ansible", "AnsiballZ")


@dataclass(frozen=True)
class Proc:
    pid: int
    uid: int
    cgroup: str
    cmdline: tuple[str, ...]
    environ: tuple[str, ...]

    @property
    def command(self) -> str:
        return " ".join(self.cmdline)

    def in_unit(self, unit: str) -> bool:
        """In the cgroup of this systemd unit (v1 and v2 lines, any cgroup namespace)."""
        return any(line.endswith("/" + unit) for line in self.cgroup.splitlines())


@dataclass
class Samples:
    snapshots: int = 0
    first: float | None = None
    last: float | None = None
    processes: list[Proc] = field(default_factory=list)

    @property
    def ansible(self) -> list[Proc]:
        return [p for p in self.processes if any(m in p.command for m in ANSIBLE_MARKS)]


def read_samples(lines: Iterable[str]) -> Samples:
    samples = Samples()
    for line in lines:
        if not line.strip():
            continue
        try:
            snap = json.loads(line)
        except ValueError:
            continue  # the last line, cut short when the sampler was stopped
        samples.snapshots += 1
        samples.first = snap["time"] if samples.first is None else samples.first
        samples.last = snap["time"]
        samples.processes.extend(
            Proc(p["pid"], p["uid"], p["cgroup"], tuple(p["cmdline"]), tuple(p["environ"]))
            for p in snap["new"]
        )
    return samples


class Sampler:
    """The sampler in CONTAINER, its JSON lines into OUT (0600) on the control node."""

    def __init__(self, container: str, out: Path, interval: float = 0.2) -> None:
        self.out = out
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._err = out.with_suffix(".err")
        with self._err.open("wb") as err:
            self._proc = subprocess.Popen(
                [
                    "docker",
                    "exec",
                    "-i",
                    container,
                    "python3",
                    "-c",
                    SAMPLER,
                    str(interval),
                    "7200",
                ],
                stdin=subprocess.PIPE,
                stdout=self._file,
                stderr=err,
            )

    def stop(self) -> Samples:
        assert self._proc.stdin
        self._proc.stdin.close()  # EOF: the sampler ends after its current snapshot
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._file.close()
        err = self._err.read_text(encoding="utf-8", errors="replace")[-2000:]
        assert self._proc.returncode == 0, f"the sampler failed: {err}"
        return read_samples(self.out.read_text(encoding="utf-8").splitlines())


# --- secrets -------------------------------------------------------------------------------


def leaves(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every string leaf of a decrypted vault, by dotted name."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from leaves(value, f"{prefix}{key}.")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from leaves(value, f"{prefix}{i}.")
    elif isinstance(data, str | int) and not isinstance(data, bool):
        yield prefix.rstrip("."), str(data)


def redact(text: str, secrets: Mapping[str, str]) -> str:
    for name, value in secrets.items():
        text = text.replace(value, f"<{name}>")
    return text


def names_in(text: str, secrets: Mapping[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


@dataclass(frozen=True)
class Allowed:
    """A secret a unit is meant to hold in its environment (its 0600 EnvironmentFile)."""

    unit: str
    variable: str
    secret: str


def scan_processes(
    procs: Iterable[Proc], secrets: Mapping[str, str], allowed: Iterable[Allowed] = ()
) -> tuple[list[str], int]:
    """Leaks (secret name, where, the redacted process) and the count of allowed holdings."""
    allowed = list(allowed)
    leaks: list[str] = []
    held = 0
    for p in procs:
        where = f"pid {p.pid} uid {p.uid}: {redact(p.command, secrets)[:300]}"
        leaks += [f"{name} in the command line of {where}" for name in names_in(p.command, secrets)]
        for entry in p.environ:
            variable = entry.split("=", 1)[0]
            for name in names_in(entry, secrets):
                if any(
                    a.secret == name and a.variable == variable and p.in_unit(a.unit)
                    for a in allowed
                ):
                    held += 1
                else:
                    leaks.append(f"{name} in the environment ({variable}) of {where}")
    return leaks, held


def scan_text(label: str, text: str, secrets: Mapping[str, str]) -> list[str]:
    leaks = []
    for number, line in enumerate(text.splitlines(), 1):
        for name in names_in(line, secrets):
            leaks.append(f"{name} in {label} line {number}: {redact(line, secrets)[:300]}")
    return leaks


# --- clients through the gateway ---------------------------------------------------------


@dataclass(frozen=True)
class Gateway:
    host: str
    port: int
    ca_pem: str = field(repr=False)
    key: str = field(repr=False)  # never in a repr: pytest prints arguments on failures
    model: str = ""

    def connect(self, timeout: float) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cadata=self.ca_pem)
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)

    def post(self, path: str, body: Mapping[str, Any], timeout: float) -> tuple[int, bytes]:
        conn = self.connect(timeout)
        try:
            conn.request("POST", path, json.dumps(body), self._headers())
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def answers_200(self, timeout: float = 10) -> bool:
        """A 1-token completion through the gateway comes back 200."""
        body = {"model": self.model, "prompt": "ping", "max_tokens": 1}
        try:
            return self.post("/v1/completions", body, timeout)[0] == 200
        except (OSError, http.client.HTTPException):
            return False

    def stream(self, max_tokens: int, timeout: float, n: int = 1) -> str:
        """One streamed completion (N choices, each a sequence of its own in vLLM):
        complete (200, `data: [DONE]` and no error event), refused (another status), broken
        (an error event, cut off, a connection error) or hung (nothing for TIMEOUT s)."""
        body = {
            "model": self.model,
            "prompt": "Once upon a time",
            "max_tokens": max_tokens,
            "ignore_eos": True,
            "stream": True,
            "n": n,
        }
        conn = self.connect(timeout)
        try:
            conn.request("POST", "/v1/completions", json.dumps(body), self._headers())
            response = conn.getresponse()
            if response.status != 200:
                response.read()
                return f"refused {response.status}"
            error = None
            while raw := response.readline():
                if raw.strip() == b"data: [DONE]":
                    return f"broken: error event ({error})" if error else "complete"
                if raw.startswith(b"data: {") and b'"error"' in raw:
                    error = _error_of(raw[6:])
            return "broken: the stream ended without [DONE]"
        except (TimeoutError, socket.timeout):  # noqa: UP041 - the name clients know
            return "hung"
        except (OSError, http.client.HTTPException) as exc:
            return f"broken: {type(exc).__name__}"
        finally:
            conn.close()


def _error_of(data: bytes) -> str:
    """The message of an SSE error event (vLLM sends one, then [DONE], when a request fails
    mid-stream)."""
    try:
        error = json.loads(data).get("error")
    except ValueError:
        return "unreadable"
    if isinstance(error, dict):
        return str(error.get("message", error))[:120]
    return str(error)[:120]


@dataclass(frozen=True)
class Outcome:
    worker: int
    started: float
    ended: float
    kind: str


class StreamLoad:
    """N workers, each streaming one completion after another until stop()."""

    def __init__(
        self, gateway: Gateway, streams: int, max_tokens: int, timeout: float, n: int = 1
    ) -> None:
        self.gateway, self.max_tokens, self.timeout, self.n = gateway, max_tokens, timeout, n
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(streams)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self, worker: int) -> None:
        while not self._stop.is_set():
            started = time.time()
            kind = self.gateway.stream(self.max_tokens, self.timeout, self.n)
            with self._lock:
                self.outcomes.append(Outcome(worker, started, time.time(), kind))
            if kind != "complete":
                self._stop.wait(0.5)

    def stop(self, join_timeout: float) -> list[int]:
        """Stop starting streams; wait for those in flight. Workers still running after
        JOIN_TIMEOUT s (hung past their own timeout) are returned."""
        self._stop.set()
        deadline = time.monotonic() + join_timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [i for i, thread in enumerate(self._threads) if thread.is_alive()]

    def kinds(self, start: float = 0.0, end: float = float("inf")) -> dict[str, int]:
        """Outcomes of the streams that ended in [START, END), in detail (refused 502, ...)."""
        out: dict[str, int] = {}
        with self._lock:
            for outcome in self.outcomes:
                if start <= outcome.ended < end:
                    out[outcome.kind] = out.get(outcome.kind, 0) + 1
        return out

    def counts(self, start: float = 0.0, end: float = float("inf")) -> dict[str, int]:
        """Outcomes of the streams that ended in [START, END), by kind (complete, refused,
        broken, hung)."""
        out: dict[str, int] = {}
        with self._lock:
            for outcome in self.outcomes:
                if start <= outcome.ended < end:
                    kind = re.split(r"[ :]", outcome.kind, maxsplit=1)[0]
                    out[kind] = out.get(kind, 0) + 1
        return out
