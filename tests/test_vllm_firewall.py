"""The vllm role's own firewall for a replica on a private address (nftables-vllm.nft.j2),
rendered by Ansible's template module: loopback and vllm_allowed_sources (IPv4 and IPv6,
addresses and networks) reach vLLM's port, anything else to that port is dropped, no other
port is touched. With nft on the machine the rules are also checked by nft itself
(`nft -c`, nothing loaded)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE = Path(sys.executable).parent / "ansible"
TEMPLATE = ROOT / "roles" / "vllm" / "templates" / "nftables-vllm.nft.j2"

pytestmark = pytest.mark.slow


def _render(tmp_path: Path, **variables: object) -> str:
    out = tmp_path / "vllm.nft"
    done = subprocess.run(
        [
            str(ANSIBLE),
            "localhost",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-m",
            "ansible.builtin.template",
            "-a",
            f"src={TEMPLATE} dest={out}",
            "-e",
            json.dumps(
                {
                    "ansible_python_interpreter": sys.executable,
                    "vllm_host": "10.0.0.7",
                    "vllm_port": 8001,
                    **variables,
                }
            ),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out.read_text(encoding="utf-8")


def _rules(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if "dport" in line]


def test_only_the_gateways_and_loopback_reach_the_port(tmp_path: Path) -> None:
    text = _render(tmp_path, vllm_allowed_sources=["10.0.0.5", "10.1.0.0/24", "fd00::5"])
    assert _rules(text) == [
        'tcp dport 8001 iif "lo" accept',
        "ip saddr { 10.0.0.5, 10.1.0.0/24 } tcp dport 8001 accept",
        "ip6 saddr { fd00::5 } tcp dport 8001 accept",
        'tcp dport 8001 counter drop comment "vllm: not an allowed source"',
    ]
    # Its own table with a default accept: the gateway's table (or none) decides the rest.
    assert "table inet llmhost_vllm {" in text and "policy accept;" in text
    nft = shutil.which("nft")
    if nft:
        check = subprocess.run(
            [nft, "-c", "-f", str(tmp_path / "vllm.nft")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0 or "Operation not permitted" in check.stderr, check.stderr


def test_one_family_only_writes_no_empty_set(tmp_path: Path) -> None:
    text = _render(tmp_path, vllm_allowed_sources=["192.168.1.10"])
    assert "ip6 saddr" not in text
    assert "ip saddr { 192.168.1.10 } tcp dport 8001 accept" in text
