"""The gateway role's input checks, run for real on localhost (preflight tag only): bad
server names, a firewall that would lock out this run's SSH port, client limits out of
range; each refused with the variable's name, before anything is installed or written."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from role_runner import run_role

KEY = "gateway-refusal-key-0123456789"


def _run(tmp_path: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    extra: dict[str, Any] = {
        "gateway_tenants": [{"name": "alice", "key": KEY}],
        "gateway_upstream_api_key": "upstream-refusal-key-0123456789",
        "gateway_evidence_dir": str(tmp_path / "bundle"),
        "gateway_firewall_enabled": False,
    }
    extra.update(overrides)
    return run_role(tmp_path, "gateway", extra, tags="gateway_preflight")


CASES = [
    ({"gateway_server_names": ["llm.example.com;"]}, "gateway_server_names must list DNS names"),
    ({"gateway_server_names": ["a b"]}, "refused: ['a b']"),
    ({"gateway_server_names": ["x.com { return 200; }"]}, "gateway_server_names"),
    ({"gateway_server_names": ["-bad.example.com"]}, "gateway_server_names"),
    ({"gateway_server_names": ["*"]}, "gateway_server_names"),
    ({"gateway_server_names": []}, "an empty list"),
    (
        {"gateway_firewall_enabled": True, "gateway_firewall_ssh_port": 22, "ansible_port": 2222},
        "gateway_firewall_ssh_port (22) is not the port this run",
    ),
    ({"gateway_client_header_timeout_s": 0}, "gateway_client_header_timeout_s"),
    ({"gateway_anonymous_rate_per_minute": 0}, "gateway_anonymous_rate_per_minute"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "expected"), CASES, ids=[str(c[0])[:50] for c in CASES])
def test_bad_input_refused_before_any_change(
    tmp_path: Path, overrides: dict[str, Any], expected: str
) -> None:
    result = _run(tmp_path, **overrides)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert expected in out, out
    assert KEY not in out, "a tenant key reached the output"
    assert not (tmp_path / "bundle").exists(), "evidence was written before the refusal"


@pytest.mark.slow
def test_good_names_pass_the_checks(tmp_path: Path) -> None:
    names = ["llm.example.com", "*.example.com", "localhost", "10.0.0.5", "::1"]
    result = _run(tmp_path, gateway_server_names=names)
    assert result.returncode == 0, result.stdout + result.stderr
