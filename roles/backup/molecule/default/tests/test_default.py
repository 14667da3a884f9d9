"""testinfra checks of the backup role in a systemd container (Debian 12; 13 with
DISTRO=debian13): restic at the pinned version, the repository made once, a hardened unit
run by a timer, a restore test that passed, and one that failed on a corrupted repository
(side_effect.yml)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

ROOT = Path(os.environ["LLMHOST_ROOT"])
DEFAULTS = yaml.safe_load((ROOT / "roles/backup/defaults/main.yml").read_text("utf-8"))
EVIDENCE = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
REPO = "/var/backups/llmhost-restic"
RESTIC = "/opt/llmhost/backup/bin/llmhost-restic"
PASSWORD = "molecule-backup-password"  # noqa: S105 (the scenario's test password)
UNIT = "llmhost-backup"


def _evidence(host, folder: Path) -> dict:
    path = folder / host.backend.get_hostname() / "backup_restore.json"
    if not path.exists():  # single-host runs write flat
        path = folder / "backup_restore.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _release(host) -> str:
    return host.check_output(". /etc/os-release && echo $VERSION_CODENAME")


def test_restic_is_the_pinned_version(host) -> None:
    pkg = host.package("restic")
    assert pkg.is_installed
    assert pkg.version == DEFAULTS["backup_package_versions"][_release(host)]


def test_credentials_are_root_only_files(host) -> None:
    for path in ("/etc/llmhost/backup/password", "/etc/llmhost/backup/restic.env"):
        f = host.file(path)
        assert f.user == "root" and f.mode == 0o600, path
    assert host.file("/etc/llmhost/backup").mode == 0o700
    assert host.file(REPO).mode == 0o700
    # The password reaches restic as a file only: not in the unit, its environment or a script.
    unit = host.check_output(f"systemctl cat {UNIT}.service")
    env = host.check_output(f"systemctl show {UNIT}.service -p Environment")
    for text in (unit, env, host.file(RESTIC).content_string):
        assert PASSWORD not in text
    assert (
        "RESTIC_PASSWORD_FILE='/etc/llmhost/backup/password'"
        in host.run("cat /etc/llmhost/backup/restic.env").stdout
    )


def test_the_unit_is_hardened_and_the_timer_runs(host) -> None:
    props = host.check_output(
        f"systemctl show {UNIT}.service -p NoNewPrivileges -p ProtectSystem -p ReadWritePaths"
        " -p MemoryMax -p Nice -p IOSchedulingClass -p PrivateNetwork -p CapabilityBoundingSet"
        " -p Type"
    )
    assert "NoNewPrivileges=yes" in props
    assert "ProtectSystem=strict" in props
    assert f"ReadWritePaths=/var/cache/llmhost-backup {REPO}" in props
    assert "MemoryMax=1073741824" in props
    assert "Nice=19" in props
    assert "IOSchedulingClass=3" in props or "IOSchedulingClass=idle" in props
    assert "PrivateNetwork=yes" in props  # a local repository needs no network
    assert "CapabilityBoundingSet=cap_dac_read_search" in props
    assert "Type=oneshot" in props
    timer = host.service(f"{UNIT}.timer")
    assert timer.is_enabled and timer.is_running
    assert "OnCalendar=daily" in host.check_output(f"systemctl cat {UNIT}.timer")


def test_the_repository_was_made_once_and_holds_the_snapshots(host) -> None:
    assert host.file(f"{REPO}/config").exists
    snapshots = json.loads(host.check_output(f"{RESTIC} snapshots --json"))
    # converge and idempotence each made one: the second found the repository (no second init).
    assert len(snapshots) >= 2
    latest = max(snapshots, key=lambda s: s["time"])
    # The path that is not on this host was skipped, not an error.
    assert "/srv/llmhost/not-on-this-host" not in latest["paths"]
    assert "/etc/nginx/llmhost/tls" in latest["paths"]
    listing = host.check_output(f"{RESTIC} ls {latest['id']}")
    assert "/etc/nginx/llmhost/tls/gateway.key" in listing
    assert "/var/lib/prometheus/metrics2/01JFIXTUREBLOCK000000000000/meta.json" in listing
    # Only Prometheus' persisted blocks: the write-ahead log and head chunks are left out.
    assert "/var/lib/prometheus/metrics2/wal" not in listing
    assert "/var/lib/prometheus/metrics2/chunks_head" not in listing


def test_backup_restore_json_says_restored(host) -> None:
    record = _evidence(host, EVIDENCE)
    assert record["restored"] is True, record
    assert record["error"] is None
    assert record["tool"] == "restic"
    assert record["package"] == "restic=" + DEFAULTS["backup_package_versions"][_release(host)]
    assert DEFAULTS["backup_package_versions"][_release(host)].startswith(record["version"])
    assert record["repository"] == REPO
    assert len(record["snapshot_id"]) == 64
    assert record["files_compared"] >= 3  # the TLS pair and the evidence file
    assert record["mismatches"] == []
    assert record["check_passed"] is True
    assert record["bytes"] > 0
    assert record["run_id"] == "molecule"
    assert record["checked_at"].endswith("Z")
    # The restore folder (a copy of the TLS key) is gone.
    assert host.run("ls -d /var/tmp/llmhost-restore-* 2>/dev/null").stdout.strip() == ""


def test_a_corrupted_repository_fails_the_restore_test(host) -> None:
    record = _evidence(host, EVIDENCE.parent / "evidence-tampered")
    assert record["restored"] is False, record
    assert record["error"], record
    message = host.file("/root/backup-tampered-failure.txt").content_string
    assert "The restore test of" in message
    assert "restored: false" in message
    assert PASSWORD not in json.dumps(record) + message
