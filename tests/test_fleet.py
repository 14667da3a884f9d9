"""The fleet lab (inventories/fleet-lab, make fleet-lab) as a test: two replicas of one
model behind a gateway host, three systemd containers in one network namespace (every
request goes to 127.0.0.1), under their own names and ports (LLMHOST_FLEET_TEST_NAME,
_SSH_PORT, _GATEWAY_PORT) so a user's fleet lab is left alone.

- scripts/fleet-lab.sh runs make fleet-lab's loop as one run of the entry point, without
  its rollback (the same playbook again; one rollout proves the mechanism and keeps the
  suite lean): serve release v1 on both replicas, roll v2 out one replica at a time under
  streams through the gateway (the switch probe): zero failed requests, zero truncated
  streams, zero refusals, and each replica's turn recorded;
- a replica killed under streaming load is taken out by the gateway within seconds (nginx's
  passive checks: a refused connection goes to the next upstream, max_fails marks it
  failed), the other replica carries the load, and the gateway uses it again once its unit
  has restarted it.

Figures are printed (with -s) and written to /tmp/llmhost-fleet-figures.json.

Run by make fleet-test, not by make test: about 11 minutes and 830 CPU-seconds on a
2-core machine (two replicas each installing vLLM and starting it twice, a rollout under
streams), more than make test can add and keep to its time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from lab_live import Gateway, StreamLoad

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PREFIX = os.environ.get("LLMHOST_FLEET_TEST_NAME", "llmhost-fleettest")
SSH_PORT = int(os.environ.get("LLMHOST_FLEET_TEST_SSH_PORT", "2240"))
GATEWAY_PORT = int(os.environ.get("LLMHOST_FLEET_TEST_GATEWAY_PORT", "8446"))
ENV = {
    "LLMHOST_FLEET_NAME": PREFIX,
    "LLMHOST_FLEET_SSH_PORT": str(SSH_PORT),
    "LLMHOST_FLEET_GATEWAY_PORT": str(GATEWAY_PORT),
}
REPLICA_PORTS = {"fleet-replica-1": 8001, "fleet-replica-2": 8002}
CLIENT_TIMEOUT_S = 60
FIGURES_FILE = Path("/tmp/llmhost-fleet-figures.json")  # noqa: S108 - asked for by name
FIGURES: dict[str, Any] = {}

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.fleet]


def _env() -> dict[str, str]:
    env = {**os.environ, **ENV, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("LLMHOST_RUN_ID", None)
    return env


def _fleetlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "fleetlab.sh"), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _in(container: str, *argv: str) -> str:
    return subprocess.run(
        ["docker", "exec", container, *argv], capture_output=True, text=True, check=False
    ).stdout


def _figure(name: str, value: object) -> None:
    FIGURES[name] = value
    print(f"\n[figures] {name}: {json.dumps(value, sort_keys=True)}")
    FIGURES_FILE.write_text(json.dumps(FIGURES, indent=2, sort_keys=True), encoding="utf-8")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """make fleet-lab's loop, the fleet kept up for the tests below; its bundle."""
    bundle = tmp_path_factory.mktemp("fleet") / "bundle"
    run_id = f"fleettest-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    made = ROOT / "evidence" / "fleet-lab" / run_id  # the entry point's bundle, moved below
    _fleetlab("down")
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "fleet-lab.sh"), "--skip-tags", "fleet_rollback"],
        env={**_env(), "LLMHOST_FLEET_KEEP": "1", "LLMHOST_RUN_ID": run_id},
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    _figure("fleet_lab_wall_s", round(time.monotonic() - started, 1))
    if made.is_dir():
        shutil.move(made, bundle)
        with contextlib.suppress(OSError):
            made.parent.rmdir()  # evidence/fleet-lab/, when this run was its only bundle
    try:
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
        yield bundle
    finally:
        _fleetlab("down")


def test_a_rolling_upgrade_fails_no_request(fleet: Path) -> None:
    upgrades = {p.name: json.loads(p.read_text()) for p in fleet.rglob("upgrade-*.json")}
    assert sorted(upgrades) == [f"upgrade-v2-{host}.json" for host in REPLICA_PORTS], upgrades
    for name, record in upgrades.items():
        assert record["drain_timed_out"] is False, name
        assert record["to_model"]["revision"] != record["from_model"]["revision"], name
    probes = sorted(fleet.glob("switch_test-*.json"))
    assert len(probes) == 1, [p.name for p in probes]
    figures = []
    for path in probes:
        probe = json.loads(path.read_text())
        summary = {k: v for k, v in probe.items() if k != "records"}
        assert probe["passed"] is True, summary
        assert probe["failed"] == 0 and probe["streams"]["truncated"] == 0, summary
        assert probe["refused"]["count"] == 0, summary  # other replicas served: no 503 at all
        assert probe["streams"]["accepted"] > 0, summary
        figures.append(
            {
                "requests": probe["requests"],
                "streams": probe["streams"],
                "failed": probe["failed"],
                "refused": probe["refused"]["count"],
            }
        )
    _figure("upgrade", figures)
    _figure(
        "replica_turns",
        {
            n: {k: r[k] for k in ("turn_s", "out_of_rotation_s", "drain_s")}
            for n, r in sorted(upgrades.items())
        },
    )
    # The bundle is sealed and each replica's records are in its own folder.
    assert (fleet / "MANIFEST.sha256").is_file()
    for host in REPLICA_PORTS:
        assert (fleet / host / "api_smoke_test.json").is_file(), host
        assert (fleet / "releases" / "v2" / host / "api_smoke_test.json").is_file(), host


def _gateway(bundle: Path) -> Gateway:
    vault = subprocess.run(
        [
            str(BIN / "ansible-vault"),
            "view",
            str(ROOT / "inventories/lab/group_vars/all/vault.yml"),
        ],
        env={**_env(), "ANSIBLE_VAULT_PASSWORD_FILE": str(ROOT / ".cache/vault/lab.pass")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    key = yaml.safe_load(vault)["vault_gateway_keys"]["lab_load"]
    ca = (bundle / "gateway_certificate.pem").read_text(encoding="utf-8")
    return Gateway("127.0.0.1", GATEWAY_PORT, ca, key, model="tiny-gpt2-fleet")


def _served_by(gateway_container: str, since: float) -> dict[str, list[float]]:
    """When each upstream answered (whole seconds), from the gateway's JSON access log."""
    out: dict[str, list[float]] = {}
    for line in _in(
        gateway_container, "cat", "/var/log/nginx/llmhost-gateway.access.log"
    ).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        try:
            stamp = datetime.fromisoformat(str(entry.get("time"))).timestamp()
        except ValueError:
            continue
        if stamp >= since and entry.get("status") == 200:
            for addr in str(entry.get("upstream_addr", "")).split(", "):
                out.setdefault(addr, []).append(stamp)
    return out


def test_a_replica_killed_under_load_is_taken_out_and_put_back(fleet: Path) -> None:
    gateway = _gateway(fleet)
    replica = f"{PREFIX}-replica-1"
    pid = _in(replica, "systemctl", "show", "-p", "MainPID", "--value", "vllm").strip()
    assert pid not in ("", "0")
    load = StreamLoad(gateway, 4, max_tokens=32, timeout=CLIENT_TIMEOUT_S)
    try:
        time.sleep(5)
        killed = time.time()
        _in(replica, "kill", "-9", pid)
        # The unit restarts vLLM; the gateway sends to it again once it answers.
        deadline = killed + 300
        back = None
        while time.time() < deadline and back is None:
            time.sleep(2)
            served = _served_by(f"{PREFIX}-gateway", killed + 2)
            back = min(served.get("127.0.0.1:8001", []), default=None)
        time.sleep(3)
    finally:
        stuck = load.stop(join_timeout=CLIENT_TIMEOUT_S + 30)
    assert not stuck, f"streams hung: {stuck}"
    assert back is not None, "the gateway never used the restarted replica again"
    during = load.kinds(killed, back)
    after = load.kinds(back + 10)
    broken = {k: n for k, n in during.items() if k != "complete"}
    failed_after = {k: n for k, n in after.items() if k != "complete"}
    # Only streams the dead replica carried at the kill may break (at most one per worker);
    # everything after goes to the other replica, then to both again.
    assert sum(broken.values()) <= 4, during
    assert during.get("complete", 0) > 0, during
    assert not failed_after, after
    last_broken = max(
        (o.ended for o in load.outcomes if o.kind != "complete" and o.ended >= killed),
        default=killed,
    )
    _figure(
        "replica_death",
        {
            "broken_at_kill": sum(broken.values()),
            "taken_out_within_s": round(last_broken - killed, 1),
            "back_in_rotation_after_s": round(back - killed, 1),
            "completed_meanwhile": during.get("complete", 0),
            "outcomes_during": during,
        },
    )
