#!/usr/bin/python3
"""llmhost-teardown: drain the gateway, stop the serving stack in order, prove it.

Usage: llmhost-teardown --config /etc/llmhost/teardown.json [--run-id ID]
                        [--trigger playbook|hard-stop] [--proof PATH] [--poweroff]

One implementation for both paths: the teardown role runs it (and fetches the proof),
the hard-stop timer runs it at the GPU plan's hard_stop_time. In order:

1. every listed unit's state before (systemctl show);
2. when anything runs: the units of `stop_first` stop (the vLLM liveness timer, which
   would otherwise restart vLLM), the gateway's drain file is created (new requests get
   503 + Retry-After), and requests in flight are awaited, bounded by `drain_timeout_s`
   (nginx stub_status Reading + Writing, vLLM's vllm:num_requests_running/waiting);
3. the last snapshot of vLLM's key metrics, then `services` stop in their order
   (`systemctl stop`: vLLM gets SIGTERM and drains for its --shutdown-timeout) and are
   disabled, so a reboot does not bring them back; absent units are skipped with a note;
4. the proof: states before and after, listening TCP ports (none of `ports` may remain),
   `nvidia-smi --query-compute-apps` (empty), run time and estimated cost, checks.

A second run finds nothing running, says so, and keeps the proof it wrote before.
The last stdout line is a JSON summary for Ansible. Exit 0 when the checks passed,
3 when something is still running or listening, 2 on bad usage or configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCHEMA = "llmhost.shutdown_proof/1"
ACTIVE_STATES = frozenset({"active", "activating", "deactivating", "reloading", "refreshing"})
SHOW_PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "MainPID",
    "TimeoutStopUSec",
)
# vLLM series kept in the proof's last snapshot (histograms by their _count and _sum).
KEY_SERIES = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:request_success_total",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:num_preemptions_total",
    "vllm:kv_cache_usage_perc",
    "vllm:e2e_request_latency_seconds_count",
    "vllm:e2e_request_latency_seconds_sum",
    "vllm:time_to_first_token_seconds_count",
    "vllm:time_to_first_token_seconds_sum",
)
RUN_ID_TIME = re.compile(r"^(\d{8}T\d{6}Z)")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
TIMESPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)")
TIMESPAN_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
LOCK_FILE = "/run/llmhost-teardown.lock"
DEFAULT_STOP_TIMEOUT_S = 600.0


# --- small helpers ------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """UTC, milliseconds, Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)


def hours(seconds: float) -> float:
    return round(seconds / 3600, 4)


# --- parsers (pure) -----------------------------------------------------------------------


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show -p A -p B UNIT` output as a dict."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def is_present(props: Mapping[str, str]) -> bool:
    return props.get("LoadState", "not-found") not in ("not-found", "")


def is_running(props: Mapping[str, str]) -> bool:
    return props.get("ActiveState", "inactive") in ACTIVE_STATES


def parse_timespan(value: str) -> float | None:
    """systemd's timespan ('1min 30s', '35s', '500ms', 'infinity') in seconds; None if none."""
    value = value.strip()
    if not value or value == "infinity":
        return None
    parts = TIMESPAN.findall(value)
    if not parts:
        return None
    return sum(float(number) * TIMESPAN_SECONDS[unit] for number, unit in parts)


def parse_stub_status(text: str) -> dict[str, int]:
    """nginx stub_status: active, accepts, handled, requests, reading, writing, waiting."""
    out: dict[str, int] = {}
    active = re.search(r"Active connections:\s*(\d+)", text)
    counters = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", text, re.M)
    rww = re.search(r"Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)", text)
    if not (active and counters and rww):
        raise ValueError(f"not an nginx stub_status page: {text[:120]!r}")
    out["active"] = int(active.group(1))
    out["accepts"], out["handled"], out["requests"] = (int(g) for g in counters.groups())
    out["reading"], out["writing"], out["waiting"] = (int(g) for g in rww.groups())
    return out


def gateway_in_flight(status: Mapping[str, int]) -> int:
    """Requests nginx is serving: Reading + Writing, less the stub_status request itself
    (idle keep-alive connections are Waiting and do not count)."""
    return max(0, status["reading"] + status["writing"] - 1)


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_metrics(text: str) -> list[Sample]:
    """Prometheus text exposition format: one Sample per sample line."""
    samples: list[Sample] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        if not match:
            continue
        name, _, labels, value = match.group(1), match.group(2), match.group(3), match.group(4)
        try:
            number = float(value)
        except ValueError:
            continue
        parsed = {
            k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in LABEL.findall(labels or "")
        }
        samples.append(Sample(name, parsed, number))
    return samples


def metric_sum(samples: Sequence[Sample], name: str) -> float | None:
    """Sum of a series over its labels; None when the series is absent."""
    values = [s.value for s in samples if s.name == name]
    return sum(values) if values else None


def key_series(samples: Sequence[Sample]) -> dict[str, list[dict[str, Any]]]:
    series: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        if sample.name in KEY_SERIES:
            series.setdefault(sample.name, []).append(
                {"labels": sample.labels, "value": sample.value}
            )
    return series


def _split_host_port(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def parse_ss(text: str) -> list[dict[str, Any]]:
    """`ss -ltnH` (State Recv-Q Send-Q Local:Port Peer:Port ...): the listening sockets."""
    listeners: list[dict[str, Any]] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        local = _split_host_port(fields[3])
        if local:
            listeners.append({"address": local[0], "port": local[1]})
    return listeners


def _proc_address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # The kernel prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words)


def parse_proc_net_tcp(text: str) -> list[dict[str, Any]]:
    """/proc/net/tcp or tcp6: sockets in state 0A (LISTEN), for hosts without `ss`."""
    listeners: list[dict[str, Any]] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != "0A":
            continue
        address, _, port = fields[1].partition(":")
        listeners.append({"address": _proc_address(address), "port": int(port, 16)})
    return listeners


def ours(listeners: Sequence[Mapping[str, Any]], ports: Sequence[int]) -> list[dict[str, Any]]:
    wanted = set(ports)
    return [dict(item) for item in listeners if item["port"] in wanted]


def parse_compute_apps(text: str) -> list[dict[str, str]]:
    """`nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader`."""
    apps: list[dict[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lower().startswith("no running"):
            continue
        parts = [p.strip() for p in line.split(",")]
        while len(parts) < 3:
            parts.append("")
        apps.append(
            {"pid": parts[0], "process_name": ",".join(parts[1:-1]), "used_memory": parts[-1]}
        )
    return apps


def run_id_time(run_id: str) -> datetime | None:
    """The UTC time at the start of a run id like 20261122T230000Z-abc123def456."""
    match = RUN_ID_TIME.match(run_id or "")
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def run_time_and_cost(
    now: datetime,
    uptime_s: float,
    init_age_s: float | None,
    in_container: bool,
    run_id: str,
    hourly_budget: float,
) -> dict[str, Any]:
    """Run time and estimated cost, with what they are measured from.

    A rented VM bills from about when it booted: the kernel's uptime is the proxy. In a
    container /proc/uptime is the host kernel's, so the container's init (PID 1) start
    is used instead. The run id's UTC timestamp gives the time since the playbook run.
    """
    boot = now - timedelta(seconds=uptime_s)
    init_start = now - timedelta(seconds=init_age_s) if init_age_s is not None else None
    use_init = in_container and init_age_s is not None
    billed_s = init_age_s if use_init and init_age_s is not None else uptime_s
    started = run_id_time(run_id)
    since_run = (now - started).total_seconds() if started else None
    return {
        "measured_at": iso(now),
        "host_boot_time": iso(boot),
        "hours_since_boot": hours(uptime_s),
        "init_start_time": iso(init_start) if init_start else None,
        "hours_since_init_start": hours(init_age_s) if init_age_s is not None else None,
        "in_container": in_container,
        "billing_proxy": (
            "container start (PID 1's start time; /proc/uptime in a container is the host's)"
            if use_init
            else "host boot time from /proc/uptime (a rented VM bills from about its boot)"
        ),
        "billed_hours_estimate": hours(billed_s),
        "run_id": run_id,
        "run_id_time": iso(started) if started else None,
        "hours_since_run_id_time": hours(since_run) if since_run is not None else None,
        "run_id_time_note": (
            None if started else "the run id carries no UTC timestamp (YYYYmmddTHHMMSSZ-...)"
        ),
        "hourly_budget": hourly_budget,
        "estimated_cost": round(billed_s / 3600 * hourly_budget, 2),
        "estimated_cost_since_run_id_time": (
            round(since_run / 3600 * hourly_budget, 2) if since_run is not None else None
        ),
        "note": "hours x the GPU plan's hourly_budget; the provider's invoice is authoritative",
    }


# --- drain (pure loop, injectable measurements) -------------------------------------------


@dataclass
class InFlight:
    """One measurement of the requests still being served."""

    gateway: int | None = None  # None: stub_status not reachable (nginx down or absent)
    vllm_running: float | None = None  # None: no vLLM metrics answered
    vllm_waiting: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not any((self.gateway or 0, self.vllm_running or 0, self.vllm_waiting or 0))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "gateway": self.gateway,
            "vllm_running": self.vllm_running,
            "vllm_waiting": self.vllm_waiting,
        }
        if self.errors:
            out["unreachable"] = self.errors
        return out


def drain(
    measure: Callable[[], InFlight],
    timeout_s: float,
    interval_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    idle_polls: int = 2,
) -> dict[str, Any]:
    """Poll until `idle_polls` measurements in a row see nothing in flight, or time out."""
    start = clock()
    first = measure()
    last, polls, streak = first, 1, int(first.idle)
    peak = (first.gateway or 0) + (first.vllm_running or 0)
    # t_s: seconds from the drain's start until that count was complete (the first, too:
    # what it counted may have changed while its sources were read).
    timeline = [{"t_s": round(clock() - start, 3), **first.as_dict()}]
    timed_out = False
    while streak < idle_polls:
        if clock() - start >= timeout_s:
            timed_out = True
            break
        sleep(interval_s)
        last = measure()
        polls += 1
        streak = streak + 1 if last.idle else 0
        peak = max(peak, (last.gateway or 0) + (last.vllm_running or 0))
        if last.as_dict() != {k: v for k, v in timeline[-1].items() if k != "t_s"}:
            timeline.append({"t_s": round(clock() - start, 3), **last.as_dict()})
    return {
        "in_flight_at_start": first.as_dict(),
        "in_flight_at_end": last.as_dict(),
        "peak_in_flight": peak,
        "duration_s": round(clock() - start, 3),
        "timeout_s": timeout_s,
        "timed_out": timed_out,
        "completed": not timed_out,
        "polls": polls,
        "timeline": timeline[:200],
    }


# --- checks and the proof (pure) ----------------------------------------------------------


def checks(
    services: Sequence[Mapping[str, Any]],
    systemd: bool,
    ours_after: Sequence[Mapping[str, Any]] | None,
    gpu: Mapping[str, Any],
) -> dict[str, bool | None]:
    """True passed, False failed, None not applicable here (with the reason in the proof)."""
    present = [s for s in services if s["present"]]
    return {
        "services_inactive": (
            all(not is_running(s["after"]) for s in present) if systemd else None
        ),
        "no_listeners_of_ours": (not ours_after) if ours_after is not None else None,
        "gpu_idle": gpu.get("idle"),
    }


def summary(proof: Mapping[str, Any]) -> str:
    stopped = [s["unit"] for s in proof["services"] if s["action"] == "stopped"]
    failed = [k for k, v in proof["checks"].items() if v is False]
    cost = proof["run_time_and_cost"]
    head = (
        "nothing was running: every listed unit was already inactive"
        if proof["nothing_was_running"]
        else f"stopped in order: {', '.join(stopped) or 'none'}"
    )
    drain_text = ""
    if proof.get("drain"):
        d = proof["drain"]
        start = d["in_flight_at_start"]
        drain_text = (
            f"; drain {'completed' if d['completed'] else 'TIMED OUT'} in {d['duration_s']} s "
            f"(in flight at start: gateway {start['gateway']}, vLLM {start['vllm_running']})"
        )
    verdict = "all checks passed" if not failed else f"FAILED: {', '.join(failed)}"
    return (
        f"{head}{drain_text}; {verdict}; about {cost['billed_hours_estimate']} h billed "
        f"(~{cost['estimated_cost']} at {cost['hourly_budget']}/h)"
    )


# --- host I/O ------------------------------------------------------------------------------


def _run(argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argv, no shell
        list(argv), capture_output=True, text=True, timeout=timeout, check=False
    )


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def unit_state(unit: str) -> dict[str, str]:
    argv = ["systemctl", "show", unit] + [f"--property={p}" for p in SHOW_PROPERTIES]
    out = _run(argv)
    props = parse_show(out.stdout)
    props["checked_at"] = iso(utcnow())
    return props


def http_get(url: str, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - config URLs
        return response.read().decode("utf-8", "replace")


def measure_in_flight(config: Mapping[str, Any]) -> InFlight:
    result = InFlight()
    status_url = config.get("gateway_status_url") or ""
    if status_url:
        try:
            result.gateway = gateway_in_flight(parse_stub_status(http_get(status_url)))
        except (OSError, ValueError, urllib.error.URLError) as exc:
            result.errors.append(f"{status_url}: {exc}")
    running: list[float] = []
    waiting: list[float] = []
    for url in config.get("vllm_metrics_urls", []):
        try:
            samples = parse_metrics(http_get(url))
        except (OSError, ValueError, urllib.error.URLError) as exc:
            result.errors.append(f"{url}: {exc}")
            continue
        running.append(metric_sum(samples, "vllm:num_requests_running") or 0.0)
        waiting.append(metric_sum(samples, "vllm:num_requests_waiting") or 0.0)
    if running:
        result.vllm_running, result.vllm_waiting = sum(running), sum(waiting)
    return result


def metrics_snapshot(urls: Sequence[str]) -> dict[str, Any]:
    snapshot: dict[str, Any] = {}
    for url in urls:
        taken = iso(utcnow())
        try:
            snapshot[url] = {"taken_at": taken, "series": key_series(parse_metrics(http_get(url)))}
        except (OSError, ValueError, urllib.error.URLError) as exc:
            snapshot[url] = {"taken_at": taken, "error": f"not reachable: {exc}"}
    return snapshot


def stop_unit(unit: str, before: Mapping[str, str]) -> dict[str, Any]:
    """systemctl stop (bounded by the unit's TimeoutStopSec), then disable when enabled."""
    record: dict[str, Any] = {"unit": unit, "present": is_present(before), "before": dict(before)}
    if not record["present"]:
        record.update(action="absent: skipped", note=f"{unit} is not installed on this host")
        return record
    if is_running(before):
        limit = parse_timespan(before.get("TimeoutStopUSec", "")) or DEFAULT_STOP_TIMEOUT_S
        started = time.monotonic()
        record["stop_started_at"] = iso(utcnow())
        try:
            out = _run(["systemctl", "stop", unit], timeout=limit + 30)
            record["stop_rc"] = out.returncode
            if out.returncode:
                record["stop_error"] = (out.stderr or out.stdout).strip()[-500:]
        except subprocess.TimeoutExpired:
            record["stop_rc"] = None
            record["stop_error"] = f"systemctl stop did not return within {limit + 30:.0f} s"
        record["stop_seconds"] = round(time.monotonic() - started, 3)
        record["action"] = "stopped"
    else:
        record["action"] = "already inactive"
    if before.get("UnitFileState") == "enabled":
        out = _run(["systemctl", "disable", "--quiet", unit])
        record["disabled"] = out.returncode == 0
    record["after"] = unit_state(unit)
    return record


def listening() -> tuple[list[dict[str, Any]] | None, str]:
    """The host's listening TCP sockets (ss, else /proc/net/tcp*) and how they were read."""
    if shutil.which("ss"):
        out = _run(["ss", "-ltnH"])
        if out.returncode == 0:
            return parse_ss(out.stdout), "ss -ltnH"
    listeners: list[dict[str, Any]] = []
    read_any = False
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            listeners += parse_proc_net_tcp(Path(name).read_text(encoding="utf-8"))
            read_any = True
    return (listeners, "/proc/net/tcp{,6}") if read_any else (None, "no ss and no /proc/net/tcp")


def gpu_compute_apps() -> dict[str, Any]:
    if not shutil.which("nvidia-smi"):
        return {"checked": False, "idle": None, "reason": "no nvidia-smi on this host (no GPU)"}
    argv = [
        "nvidia-smi",
        "--query-compute-apps=pid,process_name,used_memory",
        "--format=csv,noheader",
    ]
    try:
        out = _run(argv, timeout=60)
    except subprocess.TimeoutExpired:
        return {"checked": False, "idle": None, "reason": "nvidia-smi did not answer in 60 s"}
    if out.returncode:
        reason = f"nvidia-smi failed (rc {out.returncode}): {(out.stderr or out.stdout).strip()}"
        return {"checked": False, "idle": None, "reason": reason[-500:]}
    apps = parse_compute_apps(out.stdout)
    return {"checked": True, "command": " ".join(argv), "compute_apps": apps, "idle": not apps}


def uptime_seconds() -> float:
    return float(Path("/proc/uptime").read_text(encoding="utf-8").split()[0])


def init_age_seconds(uptime_s: float) -> float | None:
    """Seconds since PID 1 started (its start time is in clock ticks after boot)."""
    try:
        stat = Path("/proc/1/stat").read_text(encoding="utf-8")
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
    return max(0.0, uptime_s - start_ticks / os.sysconf("SC_CLK_TCK"))


def in_container() -> bool:
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        return True
    with contextlib.suppress(OSError):
        return b"container=" in Path("/proc/1/environ").read_bytes()
    return False


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.chmod(0o640)
    tmp.replace(path)


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """One teardown at a time (the timer may fire while a playbook tears down)."""
    with Path(path).open("w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the teardown --------------------------------------------------------------------------


def load_config(path: Path) -> dict[str, Any]:
    config = json.loads(path.read_text(encoding="utf-8"))
    need = ("stop_first", "services", "drain_file", "drain_timeout_s", "ports", "evidence_root")
    missing = [k for k in need if k not in config]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    return config


def create_drain_file(path: str) -> dict[str, Any]:
    drain_file = Path(path)
    if drain_file.exists():
        return {"drain_file": path, "created": False, "note": "already present"}
    if not drain_file.parent.is_dir():
        return {"drain_file": path, "created": False, "note": "no gateway on this host"}
    drain_file.write_text(f"draining since {iso(utcnow())} (llmhost-teardown)\n", encoding="utf-8")
    drain_file.chmod(0o644)
    return {"drain_file": path, "created": True}


def teardown(config: Mapping[str, Any], run_id: str, trigger: str) -> dict[str, Any]:
    started_at = utcnow()
    systemd = systemd_running()
    units = list(config["stop_first"]) + list(config["services"])
    before = {u: unit_state(u) for u in units} if systemd else {}
    anything_running = any(is_running(before[u]) for u in units) if systemd else False
    proof: dict[str, Any] = {
        "schema": SCHEMA,
        "host": socket.gethostname(),
        "run_id": run_id,
        "trigger": trigger,
        "started_at": iso(started_at),
        "systemd": systemd or "no systemd as PID 1: units could not be read or stopped",
        "nothing_was_running": systemd and not anything_running,
        "drain": None,
        "metrics_snapshot": {},
    }
    records: list[dict[str, Any]] = []
    if systemd:
        first = [stop_unit(u, before[u]) for u in config["stop_first"]]
        records += first
        if anything_running:
            gate = create_drain_file(str(config["drain_file"]))
            drain_started = utcnow()
            result = drain(
                lambda: measure_in_flight(config),
                float(config["drain_timeout_s"]),
                float(config.get("poll_interval_s", 0.5)),
            )
            proof["drain"] = {
                **gate,
                "started_at": iso(drain_started),
                "ended_at": iso(utcnow()),
                **result,
            }
            proof["metrics_snapshot"] = metrics_snapshot(config.get("vllm_metrics_urls", []))
        records += [stop_unit(u, before[u]) for u in config["services"]]
    proof["services"] = records
    listeners, source = listening()
    ours_after = ours(listeners, config["ports"]) if listeners is not None else None
    proof["listening_after"] = {
        "source": source,
        "our_ports": list(config["ports"]),
        "all": listeners,
        "ours": ours_after,
    }
    proof["gpu"] = gpu_compute_apps()
    uptime = uptime_seconds()
    finished = utcnow()
    proof["run_time_and_cost"] = run_time_and_cost(
        finished,
        uptime,
        init_age_seconds(uptime),
        in_container(),
        run_id,
        float(config.get("hourly_budget", 0) or 0),
    )
    proof["checks"] = checks(records, systemd, ours_after, proof["gpu"])
    proof["passed"] = all(v is not False for v in proof["checks"].values())
    proof["finished_at"] = iso(finished)
    proof["duration_s"] = round((finished - started_at).total_seconds(), 3)
    proof["summary"] = summary(proof)
    return proof


def default_proof_path(config: Mapping[str, Any], run_id: str, trigger: str) -> Path:
    label = run_id if trigger == "playbook" else f"hard-stop-{utcnow():%Y%m%dT%H%M%SZ}"
    return Path(config["evidence_root"]) / label / "shutdown_proof.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmhost-teardown", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=Path("/etc/llmhost/teardown.json"))
    parser.add_argument("--run-id", default="adhoc")
    parser.add_argument("--trigger", choices=("playbook", "hard-stop"), default="playbook")
    parser.add_argument("--proof", type=Path, help="default: <evidence_root>/<run id>/...")
    parser.add_argument("--poweroff", action="store_true", help="power the host off at the end")
    parser.add_argument("--lock-file", default=LOCK_FILE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # The hard stop stops the host whatever happens before: a missing or bad
    # configuration, a failed drain, a full disk, any error. (A timeout or a missing
    # script is the unit's ExecStopPost's, which powers off too.)
    try:
        return run(args)
    except Exception as exc:
        print(f"llmhost-teardown: failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 4
    finally:
        if args.poweroff:
            poweroff()


def poweroff() -> None:
    """Ask systemd to power the host off, without waiting; never raises."""
    print("llmhost-teardown: powering the host off (hard stop)", file=sys.stderr, flush=True)
    try:
        _run(["systemctl", "--no-block", "poweroff"])
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"llmhost-teardown: systemctl poweroff failed: {exc}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Load the configuration, tear down, write the proof; the exit code says how it went."""
    try:
        config = load_config(args.config)
    except (OSError, ValueError) as exc:
        print(f"llmhost-teardown: bad configuration: {exc}", file=sys.stderr)
        return 2
    proof_path = args.proof or default_proof_path(config, args.run_id, args.trigger)
    with locked(args.lock_file):
        proof = teardown(config, args.run_id, args.trigger)
        keep_old = proof["nothing_was_running"] and proof_path.exists()
        if not keep_old:
            write_json(proof_path, proof)
    message = proof["summary"]
    if keep_old:
        message += f"; the proof written before is kept: {proof_path}"
    print(message, file=sys.stderr)
    result = {
        "changed": not keep_old,
        "nothing_was_running": proof["nothing_was_running"],
        "passed": proof["passed"],
        "checks": proof["checks"],
        "proof": str(proof_path),
        "summary": message,
    }
    print(json.dumps(result), flush=True)
    return 0 if proof["passed"] else 3


if __name__ == "__main__":
    sys.exit(main())
