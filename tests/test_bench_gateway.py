"""Unit tests of scripts/bench_gateway.py and its load script (no lab host, no docker):
the tenant's limits and the rounds sized under them (or refused), key scrubbing, the
CPU-seconds-per-1k-tokens and ratio arithmetic, with `docker exec` faked; and the load
script against a local server that answers 429."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from loading import load_module

ROOT = Path(__file__).resolve().parents[1]
bench = load_module("bench_gateway", ROOT / "scripts" / "bench_gateway.py")
loadgen = load_module("bench_vllm_load", ROOT / "scripts" / "bench_vllm_load.py")

KEY = "tenantKEY0123456789abcdefXYZ"
VLLM_KEY = "vllmKEY9876543210zyxwvuABC"


def _limits(rate: int = 6000, burst: int = 200, conc: int = 64) -> Any:
    return bench.Limits("lab_load", rate, burst, conc, "test")


def _inventory(tmp_path: Path, tenants: list[dict[str, Any]], **extra: Any) -> Path:
    folder = tmp_path / "inv" / "group_vars" / "all"
    folder.mkdir(parents=True)
    data = {"gateway_tenants": tenants, **extra}
    (folder / "llmhost.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (folder / "vault.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n", encoding="utf-8")
    return tmp_path / "inv"


# --- limits and the plan -----------------------------------------------------------------


def test_lab_inventory_limits_and_the_default_plan_fit() -> None:
    limits = bench.tenant_limits(ROOT / "inventories" / "lab", "lab_load")
    assert (limits.rate_per_minute, limits.burst, limits.concurrency) == (6000, 200, 64)
    plan = bench.plan_rounds(limits, 16, 48, 100, 3)
    assert plan.requests_per_gateway_round == 150  # 100 models + 2 warm-ups + 48 streams
    assert plan.drain_s == 3.0  # 150 requests at 100/s, rounded up, + 1 s margin


def test_tenant_defaults_fill_what_a_tenant_does_not_set(tmp_path: Path) -> None:
    inv = _inventory(
        tmp_path,
        [{"name": "t1", "key": "{{ vault_keys.t1 }}", "rate_per_minute": 1200}],
        gateway_tenant_defaults={"rate_per_minute": 60, "rate_burst": 90, "concurrency": 8},
    )
    limits = bench.tenant_limits(inv, "t1")
    assert (limits.rate_per_minute, limits.burst, limits.concurrency) == (1200, 90, 8)
    # ... and the role's defaults when the inventory has none.
    inv2 = _inventory(tmp_path / "b", [{"name": "t2", "key": "k"}])
    assert bench.tenant_limits(inv2, "t2").burst == 20


def test_unknown_tenant_and_templated_limits_are_refused(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, [{"name": "t1", "key": "k", "rate_burst": "{{ x }}"}])
    with pytest.raises(bench.SetupError, match=r"'nope' is not in gateway_tenants.*t1"):
        bench.tenant_limits(inv, "nope")
    with pytest.raises(bench.SetupError, match=r"rate_burst.*--burst"):
        bench.tenant_limits(inv, "t1")
    # Passed in, the inventory is not needed.
    limits = bench.tenant_limits(tmp_path / "none", "t9", 600, 50, 4)
    assert (limits.rate_per_minute, limits.burst, limits.concurrency, limits.source) == (
        600,
        50,
        4,
        "command line",
    )


def test_a_round_larger_than_the_burst_is_refused_naming_tenant_and_limit() -> None:
    with pytest.raises(bench.SetupError) as err:
        bench.plan_rounds(_limits(), 16, 48, 200, 3)  # today's 200 models: 250 > 200
    message = str(err.value)
    assert "'lab_load'" in message and "burst of 200" in message and "6000/min" in message
    assert "sends 250" in message and "--models-requests to at most 150" in message
    with pytest.raises(bench.SetupError, match="lower --concurrency"):
        bench.plan_rounds(_limits(burst=40), 16, 48, 1, 3)


def test_more_streams_than_the_tenant_concurrency_is_refused() -> None:
    with pytest.raises(bench.SetupError, match=r"'lab_load' allows 8 requests in flight"):
        bench.plan_rounds(_limits(conc=8), 16, 48, 10, 3)
    bench.plan_rounds(_limits(conc=16), 16, 48, 10, 3)  # exactly at the limit is fine


def test_a_slow_rate_means_long_drains() -> None:
    plan = bench.plan_rounds(_limits(rate=60, burst=100), 4, 12, 10, 2)
    assert plan.requests_per_gateway_round == 24
    assert plan.drain_s == 25.0  # 24 requests at 1/s + 1 s


def test_rounds_alternate_and_the_pacer_drains_between_gateway_rounds() -> None:
    assert bench.order(3) == [
        (1, "direct"),
        (1, "gateway"),
        (2, "gateway"),
        (2, "direct"),
        (3, "direct"),
        (3, "gateway"),
    ]
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pacer = bench.Pacer(3.0, clock=lambda: now[0], sleep=sleep)
    pacer.before_gateway_round()  # unknown bucket at the start: a full drain
    now[0] += 10  # the round
    pacer.after_gateway_round()
    now[0] += 0.5
    pacer.before_gateway_round()  # right after the last one: the rest of the drain
    now[0] += 10
    pacer.after_gateway_round()
    now[0] += 20  # a direct round in between: drained already
    pacer.before_gateway_round()
    assert slept == [3.0, 2.5]
    assert pacer.waited_s == 5.5


# --- arithmetic ------------------------------------------------------------------------


def test_cpu_seconds_per_1k_tokens() -> None:
    cpu = {
        "comm": "nginx",
        "clk_tck": 100,
        "before": {"10": 500, "11": 1000, "12": 40},
        "after": {"10": 502, "11": 1150, "12": 88},
    }
    got = bench.cpu_seconds(cpu)
    assert got.seconds == pytest.approx(2.0)  # (2 + 150 + 48) ticks / 100
    assert not got.pids_changed
    assert bench.per_1k_tokens(got.seconds, 3072) == pytest.approx(2.0 * 1000 / 3072)
    # A worker that came during the round counts whole; the change is flagged.
    moved = bench.cpu_seconds({**cpu, "after": {"10": 502, "13": 30}})
    assert moved.seconds == pytest.approx(0.32) and moved.pids_changed
    with pytest.raises(bench.SetupError, match="no nginx process"):
        bench.cpu_seconds({**cpu, "after": {}})
    with pytest.raises(bench.SetupError, match="no tokens"):
        bench.per_1k_tokens(1.0, 0)


def test_ratio() -> None:
    assert bench.ratio(855.0, 1000.0) == 0.855
    assert bench.ratio(2, 3) == 0.667
    with pytest.raises(bench.SetupError, match="not serving"):
        bench.ratio(1.0, 0.0)


def _round(tok_s: float, ttft: float, models: float, ticks: int, tokens: int = 3072) -> dict:
    return {
        "output_tok_per_s": tok_s,
        "ttft_p50_ms": ttft,
        "models_p50_ms": models,
        "wall_s": 4.0,
        "output_tokens": tokens,
        "client_cpu_s": ticks / 50,
        "cpu": {"clk_tck": 100, "before": {"7": 0, "8": 0}, "after": {"7": 0, "8": ticks}},
    }


def test_summary_medians_ratio_added_latency_and_net_cpu() -> None:
    rounds = {
        "direct": [_round(1000, 20, 1.0, 4), _round(900, 22, 1.2, 4), _round(1100, 21, 1.1, 4)],
        "gateway": [_round(850, 25, 2.0, 44), _round(880, 24, 2.5, 48), _round(800, 26, 2.2, 40)],
    }
    s = bench.summarize(rounds)
    assert s["direct"]["output_tok_per_s"] == 1000 and s["gateway"]["output_tok_per_s"] == 850
    assert s["throughput_ratio"] == 0.85
    assert s["added_p50_ms_models"] == pytest.approx(1.1)
    assert s["added_p50_ms_ttft"] == pytest.approx(4.0)
    # 0.44 s over 3072 tokens; background 0.04 s / 4 s = 0.01 s/s, so net 0.40 s.
    assert s["nginx_cpu_s_per_1k_tokens"] == pytest.approx(round(0.44 * 1000 / 3072, 4))
    assert s["nginx_cpu_s_per_1k_tokens_net"] == pytest.approx(round(0.40 * 1000 / 3072, 4))
    assert s["nginx_background_cpu_s_per_s"] == pytest.approx(0.01)
    assert s["client_cpu_s_per_1k_tokens"] == {
        "direct": round(0.08 * 1000 / 3072, 4),
        "gateway": round(0.88 * 1000 / 3072, 4),
    }


def test_summary_gives_no_cpu_figure_when_nginx_processes_changed() -> None:
    moved = _round(850, 25, 2.0, 44)
    moved["cpu"]["after"] = {"7": 0, "9": 44}
    rounds = {"direct": [_round(1000, 20, 1.0, 4)], "gateway": [moved]}
    s = bench.summarize(rounds)
    assert s["nginx_cpu_s_per_1k_tokens"] is None and "reload" in s["nginx_cpu_note"]


# --- the docker exec layer, faked ------------------------------------------------------


class FakeDocker:
    """Answers docker exec/cp like a serving lab; records every argv and stdin."""

    def __init__(self, gateway: str = "ok", direct: str = "ok") -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.gateway, self.direct = gateway, direct
        self.ticks = 0

    def __call__(self, args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        self.calls.append((args, stdin))
        cmd = args[-1]
        if args[1] == "cp":
            return self._done("")
        if "release.json" in cmd:
            return self._done(json.dumps({"venv": "/opt/v", "served_model_name": "m"}))
        side = "gateway" if "--key-stdin" in cmd else "direct"
        mode = self.gateway if side == "gateway" else self.direct
        if mode == "429":
            body = {"error": "rate_limited", "failures": {"429": 5}, "phase": "streams"}
            return self._done(json.dumps(body), 3)
        if mode == "crash":
            # What a careless client could print: the key, plain and in a header.
            err = f"Traceback ...\nhttpx: Authorization: Bearer {KEY}\nkey={KEY} {VLLM_KEY}"
            return self._done("", 1, err)
        self.ticks += 10 if side == "direct" else 60
        cpu = {"comm": "nginx", "clk_tck": 100, "before": {"5": 0}, "after": {"5": self.ticks}}
        tok_s = 1000.0 if side == "direct" else 900.0
        result = {
            "output_tok_per_s": tok_s,
            "ttft_p50_ms": 20.0,
            "models_p50_ms": 1.0 if side == "direct" else 1.5,
            "wall_s": 3.0,
            "output_tokens": 3072,
            "cpu": cpu,
        }
        return self._done("warming up\n" + json.dumps(result))

    @staticmethod
    def _done(out: str, rc: int = 0, err: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], rc, out, err)


def _key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_text(KEY + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _main(tmp_path: Path, fake: FakeDocker, *extra: str) -> int:
    argv = [
        "--inventory",
        str(ROOT / "inventories" / "lab"),
        "--tenant-key-file",
        str(_key_file(tmp_path)),
        "--rounds",
        "2",
        *extra,
    ]
    return bench.main(argv, runner=fake, sleep=lambda s: None)


def test_a_run_alternates_sides_and_never_puts_the_key_on_a_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeDocker()
    assert _main(tmp_path, fake) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["throughput_ratio"] == 0.9 and report["concurrency"] == 16
    assert report["tenant_limits"]["burst"] == 200 and report["plan"]["models_requests"] == 100
    assert "nginx_cpu_s_per_1k_tokens" in report and "throughput gateway/direct 0.900" in err
    loads = [(a, i) for a, i in fake.calls if "bench_vllm_load.py --model" in a[-1]]
    sides = ["gateway" if "--key-stdin" in a[-1] else "direct" for a, _ in loads]
    assert sides == ["direct", "gateway", "gateway", "direct"]
    for args, stdin in fake.calls:
        assert not any(KEY in a for a in args)
        assert stdin in (None, KEY + "\n")
    gateway = [(a, i) for a, i in loads if "--key-stdin" in a[-1]]
    assert all(a[:3] == ["docker", "exec", "-i"] and i == KEY + "\n" for a, i in gateway)
    assert all("--cpu-comm nginx" in a[-1] and "--models-requests 100" in a[-1] for a, _ in loads)
    assert KEY not in out + err


def test_a_failing_request_prints_no_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _main(tmp_path, FakeDocker(direct="crash")) == 2
    out, err = capsys.readouterr()
    assert "direct round failed" in err and bench.REDACTED in err
    assert KEY not in out + err
    assert json.loads(out)["ok"] is False


def test_scrub_removes_known_keys_and_any_bearer_token() -> None:
    text = f"Authorization: Bearer other-token-1234\n{KEY} and {VLLM_KEY}, 'Bearer {KEY}'"
    clean = bench.scrub(text, [KEY, VLLM_KEY])
    assert KEY not in clean and VLLM_KEY not in clean and "other-token-1234" not in clean
    assert clean.count(bench.REDACTED) == 4


def test_a_429_is_a_setup_failure_never_a_throughput(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _main(tmp_path, FakeDocker(gateway="429")) == 2
    out, err = capsys.readouterr()
    assert "benchmark setup failure, not a throughput figure" in err
    assert "'lab_load' was refused with 429 (5 requests" in err
    assert "throughput_ratio" not in out and json.loads(out)["ok"] is False
    assert KEY not in out + err


def test_refused_before_any_docker_call(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeDocker()
    assert _main(tmp_path, fake, "--models-requests", "200") == 2
    assert fake.calls == []
    assert "burst of 200" in capsys.readouterr().err


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = _key_file(tmp_path)
    path.chmod(0o644)
    with pytest.raises(bench.SetupError, match="must be 0600"):
        bench.read_key_file(path)


def test_key_from_vault_reference() -> None:
    vault = {"vault_gateway_keys": {"lab_load": KEY}}
    assert bench.key_from_vault("{{ vault_gateway_keys.lab_load }}", vault, "lab_load") == KEY
    with pytest.raises(bench.SetupError, match="not in the vault"):
        bench.key_from_vault("{{ vault_gateway_keys.other }}", vault, "other")
    with pytest.raises(bench.SetupError, match="--tenant-key-file"):
        bench.key_from_vault(KEY, vault, "lab_load")
    assert KEY in bench.leaves(vault)


# --- the load script -------------------------------------------------------------------


def test_proc_ticks_reads_utime_and_stime_of_the_named_processes(tmp_path: Path) -> None:
    def proc(pid: int, comm: str, utime: int, stime: int) -> None:
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "comm").write_text(comm + "\n", encoding="utf-8")
        # proc(5): state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
        # cmajflt utime stime cutime cstime ... (a comm may hold spaces and parentheses)
        rest = f"S 1 2 2 0 -1 4194560 120 0 0 0 {utime} {stime} 7 7 20 0 1 0"
        (d / "stat").write_text(f"{pid} ({comm}) {rest}\n", encoding="utf-8")

    proc(10, "nginx", 300, 45)
    proc(11, "nginx", 7, 3)
    proc(12, "python3", 999, 999)
    proc(13, "a (b) c", 999, 999)
    (tmp_path / "self").mkdir()
    assert loadgen.proc_ticks("nginx", tmp_path) == {10: 345, 11: 10}


class _TooMany(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization", ""))
        body = b'{"error":{"message":"Rate or concurrency limit reached.","code":"429"}}'
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def too_many() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TooMany)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_load_script_reports_a_429_by_status_and_prints_no_key(too_many: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_vllm_load.py"),
            "--url",
            too_many,
            "--key-stdin",
            "--model",
            "m",
            "--concurrency",
            "2",
            "--requests",
            "2",
            "--models-requests",
            "1",
        ],
        input=KEY + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == loadgen.EXIT_RATE_LIMITED, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] == "rate_limited" and result["failures"] == {"429": 1}
    assert KEY not in done.stdout + done.stderr
    assert _TooMany.seen == [f"Bearer {KEY}"]  # the key from stdin did reach the server
