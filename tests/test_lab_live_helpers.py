"""Unit tests of tests/lab_live.py (no lab host): the process sampler, the secrets scan
and the streaming client's verdicts, so the live lab tests cannot pass for a broken tool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lab_live import (
    SAMPLER,
    Allowed,
    Gateway,
    Proc,
    StreamLoad,
    leaves,
    read_samples,
    scan_processes,
    scan_text,
)

from tests.support.tls import self_signed

SECRET = "S3cr3tValue0123456789abcdefghijABCDEFGHIJ"  # noqa: S105 - a planted test value
SECRETS = {"vault_gateway_keys.lab_eval": SECRET, "vault_llmhost_vllm_api_key": "V" * 40}
VLLM_CGROUP = "0::/docker/abc/system.slice/vllm.service\n"


def test_the_sampler_sees_a_processes_command_line_and_environment() -> None:
    """The sampler script itself (run here, not in a container): it records a process
    with its environment, and ends when its stdin closes."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "marker-argument"],
        env={**os.environ, "PLANTED": SECRET},
    )
    sampler = subprocess.Popen(
        [sys.executable, "-c", SAMPLER, "0.05", "60"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sampler.stdin and sampler.stdout
    try:
        lines = [sampler.stdout.readline() for _ in range(3)]  # three snapshots
    finally:
        child.kill()
        child.wait()
    sampler.stdin.close()  # EOF: it ends after the snapshot in progress
    lines += sampler.stdout.read().splitlines()
    assert sampler.wait(timeout=30) == 0
    samples = read_samples(lines)
    assert samples.snapshots >= 3
    seen = [p for p in samples.processes if "marker-argument" in p.cmdline]
    assert seen, "the sampler missed the child"
    assert f"PLANTED={SECRET}" in seen[0].environ
    assert seen[0].uid == os.getuid()
    leaks, _ = scan_processes(seen, SECRETS)
    assert leaks == [
        f"vault_gateway_keys.lab_eval in the environment (PLANTED) of pid {seen[0].pid} "
        f"uid {os.getuid()}: {seen[0].command}"
    ]


def test_read_samples_skips_a_line_cut_short() -> None:
    line = {"snapshot": 1, "time": 1.0, "processes": 1, "new": []}
    samples = read_samples([json.dumps(line), json.dumps({**line, "time": 2.5}), '{"snap'])
    assert (samples.snapshots, samples.first, samples.last) == (2, 1.0, 2.5)


def _proc(cmdline: tuple[str, ...], environ: tuple[str, ...] = (), cgroup: str = "") -> Proc:
    return Proc(pid=7, uid=0, cgroup=cgroup, cmdline=cmdline, environ=environ)


def test_scan_finds_and_redacts_a_secret_on_a_command_line() -> None:
    leaks, held = scan_processes(
        [_proc(("curl", "-H", f"Authorization: Bearer {SECRET}"))], SECRETS
    )
    assert held == 0
    assert leaks == [
        "vault_gateway_keys.lab_eval in the command line of pid 7 uid 0: "
        "curl -H Authorization: Bearer <vault_gateway_keys.lab_eval>"
    ]
    assert SECRET not in "".join(leaks)


def test_scan_allows_only_the_named_variable_of_the_named_unit() -> None:
    allowed = [Allowed("vllm.service", "VLLM_API_KEY", "vault_llmhost_vllm_api_key")]
    key = "V" * 40
    held_by_vllm = _proc(("vllm",), (f"VLLM_API_KEY={key}",), VLLM_CGROUP)
    assert scan_processes([held_by_vllm], SECRETS, allowed) == ([], 1)
    elsewhere = _proc(("sh",), (f"VLLM_API_KEY={key}",), "0::/system.slice/ssh.service\n")
    other_name = _proc(("vllm",), (f"TOKEN={key}",), VLLM_CGROUP)
    other_secret = _proc(("vllm",), (f"VLLM_API_KEY={SECRET}",), VLLM_CGROUP)
    for proc in (elsewhere, other_name, other_secret):
        leaks, held = scan_processes([proc], SECRETS, allowed)
        assert len(leaks) == 1 and held == 0, proc
    in_argv = _proc(("vllm", "--api-key", key), (), VLLM_CGROUP)
    assert len(scan_processes([in_argv], SECRETS, allowed)[0]) == 1  # never on argv


def test_scan_text_names_the_line_and_redacts() -> None:
    leaks = scan_text("the journal", f"ok\nInvoked with api_key={SECRET} x=1\n", SECRETS)
    assert leaks == [
        "vault_gateway_keys.lab_eval in the journal line 2: "
        "Invoked with api_key=<vault_gateway_keys.lab_eval> x=1"
    ]


def test_leaves_flattens_the_vault() -> None:
    vault = {"a": "x" * 8, "keys": {"one": "y" * 8, "list": ["z" * 8]}, "n": 12345678}
    assert dict(leaves(vault)) == {
        "a": "x" * 8,
        "keys.one": "y" * 8,
        "keys.list.0": "z" * 8,
        "n": "12345678",
    }


# --- the streaming client: complete, refused, broken, hung --------------------------------


class _Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "complete"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.mode == "refused":
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b'data: {"choices": [{"text": "a"}]}\n\n')
        self.wfile.flush()
        if self.mode == "hung":
            time.sleep(6)  # past the client's 3 s: hung, whatever the load
        elif self.mode == "complete":
            self.wfile.write(b"data: [DONE]\n\n")
        elif self.mode == "error":  # what vLLM sends when its engine dies mid-stream
            self.wfile.write(b'data: {"error": {"message": "EngineCore died", "code": 500}}\n\n')
            self.wfile.write(b"data: [DONE]\n\n")
        # broken: the connection closes without [DONE]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    import ssl

    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Gateway("127.0.0.1", httpd.server_address[1], cert.read_text(), "k" * 20, "tiny")
    httpd.shutdown()


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("complete", "complete"),
        ("refused", "refused 502"),
        ("broken", "broken: the stream ended without [DONE]"),
        ("error", "broken: error event (EngineCore died)"),
        ("hung", "hung"),
    ],
)
def test_stream_verdicts(gateway: Gateway, mode: str, kind: str) -> None:
    _Gateway.mode = mode
    assert gateway.stream(max_tokens=4, timeout=3) == kind


def test_the_gateways_key_is_never_in_its_repr(gateway: Gateway) -> None:
    assert gateway.key not in repr(gateway)
    assert "BEGIN CERTIFICATE" not in repr(gateway)


def test_stream_load_counts_by_kind_and_stops(gateway: Gateway) -> None:
    _Gateway.mode = "complete"
    load = StreamLoad(gateway, streams=3, max_tokens=4, timeout=5)
    time.sleep(0.5)
    middle = time.time()
    _Gateway.mode = "refused"
    time.sleep(0.8)
    assert load.stop(join_timeout=10) == []
    assert set(load.counts(0, middle)) == {"complete"}
    assert load.counts(middle + 0.2).get("refused")
    assert not gateway.answers_200(timeout=2)
