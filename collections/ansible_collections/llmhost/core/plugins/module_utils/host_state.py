"""What is on a serving host, and how it differs from the last run of the same inventory.

Collection (on the host, standard library only, nothing is run): installed Debian packages
read from dpkg's status file, each llmhost venv's distributions read from their dist-info
METADATA, sha256 of systemd units, drop-ins and config files (hashed only, never copied:
some hold secrets), the llmhost local facts (model revision and manifest digest, vLLM's
release), vLLM's current release.json, the gateway certificate's fingerprint and the
machine id's digest.

Comparison (on the control node): both states flattened to ``key -> value``; a difference
whose key matches a run-specific rule (a value a rebuild changes by design, e.g. a
self-signed certificate generated on the host) is listed apart with its reason, and the
host counts as identical when only those differ.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.digests import sha256_file, sha256_text

SCHEMA = "llmhost.host_state/v1"
REPORT_SCHEMA = "llmhost.drift_report/v1"
FIRST_RUN = "no previous run of this inventory"
_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)


# --- Debian packages -------------------------------------------------------------------


def parse_dpkg_status(text: str) -> dict[str, str]:
    """Installed packages of a dpkg status file: ``name:arch`` -> version, sorted."""
    packages: dict[str, str] = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue  # continuation lines (descriptions, conffiles)
            name, _, value = line.partition(":")
            fields[name.strip()] = value.strip()
        status = fields.get("Status", "").split()
        if not fields.get("Package") or status[-1:] != ["installed"]:
            continue
        key = f"{fields['Package']}:{fields.get('Architecture', '')}"
        packages[key] = fields.get("Version", "")
    return dict(sorted(packages.items()))


def listing_digest(versions: Mapping[str, str]) -> str:
    """sha256 of ``name==version`` lines, sorted: one value for a whole listing."""
    text = "".join(f"{name}=={versions[name]}\n" for name in sorted(versions))
    return sha256_text(text)


# --- Python venvs ----------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """A distribution name as pip freeze compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_metadata(text: str) -> tuple[str, str] | None:
    """(name, version) from a METADATA / PKG-INFO header, None when either is missing."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the body (long description) follows the first blank line
        name, sep, value = line.partition(":")
        if sep and name in ("Name", "Version") and name not in fields:
            fields[name] = value.strip()
    if fields.get("Name") and fields.get("Version"):
        return normalize_name(fields["Name"]), fields["Version"]
    return None


def venv_packages(venv: Path) -> dict[str, str]:
    """A venv's installed distributions (its site-packages' dist-info), like pip freeze."""
    found: dict[str, str] = {}
    for site in sorted(venv.glob("lib/python*/site-packages")):
        metas = [*site.glob("*.dist-info/METADATA"), *site.glob("*.egg-info/PKG-INFO")]
        for meta in sorted(metas):
            parsed = parse_metadata(meta.read_text(encoding="utf-8", errors="replace"))
            if parsed:
                found[parsed[0]] = parsed[1]
    return dict(sorted(found.items()))


def venv_python(venv: Path) -> str:
    """The interpreter version pyvenv.cfg records ('' when it says none)."""
    for line in (venv / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() in ("version", "version_info"):
            return value.strip()
    return ""


def find_venvs(roots: Iterable[str], max_depth: int) -> list[Path]:
    """Folders holding pyvenv.cfg under the roots, at most max_depth levels down; symlinks
    are not followed (a release's ``current`` link is not a second venv)."""
    venvs: list[Path] = []
    for root in roots:
        base = Path(root)
        if not base.is_dir():
            continue
        for folder, dirs, files in os.walk(base):
            depth = len(Path(folder).relative_to(base).parts)
            if "pyvenv.cfg" in files:
                venvs.append(Path(folder))
                dirs[:] = []
                continue
            if depth >= max_depth:
                dirs[:] = []
            dirs.sort()
    return sorted(set(venvs))


# --- files -----------------------------------------------------------------------------


def _expand(pattern: str) -> Iterator[Path]:
    """Paths a pattern names: ``<dir>/**`` is every entry below dir (symlinks not
    followed), anything else a glob (``*``, ``?``, ``[...]``) matched level by level."""
    if pattern.endswith("/**"):
        base = Path(pattern[:-3])
        if not base.is_dir() or base.is_symlink():
            return
        for folder, dirs, files in os.walk(base):
            for name in dirs:
                if (Path(folder) / name).is_symlink():
                    yield Path(folder) / name
            yield from (Path(folder) / name for name in files)
        return
    path = Path(pattern)
    parts = path.parts
    candidates = [Path(parts[0])]
    for part in parts[1:]:
        step: list[Path] = []
        for parent in candidates:
            if not any(c in part for c in "*?["):
                step.append(parent / part)
            elif parent.is_dir() and not parent.is_symlink():
                step.extend(p for p in sorted(parent.iterdir()) if fnmatch.fnmatch(p.name, part))
        candidates = step
    yield from candidates


def file_digests(patterns: Iterable[str]) -> dict[str, str]:
    """path -> sha256 of each regular file the patterns name; a symlink -> ``-> target``.
    Contents are hashed, never returned: some of these files hold secrets."""
    digests: dict[str, str] = {}
    for pattern in patterns:
        for path in _expand(pattern):
            if path.is_symlink():
                digests[str(path)] = f"-> {path.readlink()}"
            elif path.is_file():
                try:
                    digests[str(path)] = sha256_file(path)
                except OSError as error:
                    digests[str(path)] = f"unreadable: {error.strerror}"
    return dict(sorted(digests.items()))


# --- certificate, facts, machine id ----------------------------------------------------


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at offset."""
    tag = data[offset]
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    return tag, start, start + length


def der_self_issued(der: bytes) -> bool:
    """Whether the certificate's issuer equals its subject (self-signed, as the gateway
    role generates one when no certificate is supplied)."""
    _, cert_start, _ = _tlv(der, 0)
    _, tbs_start, tbs_end = _tlv(der, cert_start)
    fields: list[bytes] = []
    offset = tbs_start
    while offset < tbs_end and len(fields) < 6:
        tag, _, end = _tlv(der, offset)
        if tag != 0xA0:  # the explicit version is optional
            fields.append(der[offset:end])
        offset = end
    # serial, signature algorithm, issuer, validity, subject
    return len(fields) >= 5 and fields[2] == fields[4]


def certificate_state(pem: bytes) -> dict[str, Any]:
    """sha256 fingerprint of the first certificate's DER (colon-separated, as
    community.crypto writes it) and whether it is self-issued."""
    match = _PEM_CERT.search(pem)
    if not match:
        raise ValueError("no PEM certificate found")
    try:
        der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except binascii.Error as error:
        raise ValueError(f"the PEM certificate is not base64: {error}") from error
    digest = hashlib.sha256(der).hexdigest()
    return {
        "sha256": ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        "self_signed": der_self_issued(der),
    }


def read_local_facts(folder: Path, prefix: str = "llmhost_") -> dict[str, Any]:
    """The llmhost local facts (facts.d JSON); a broken file is recorded as such."""
    facts: dict[str, Any] = {}
    if not folder.is_dir():
        return facts
    for path in sorted(folder.glob(f"{prefix}*.fact")):
        try:
            facts[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            facts[path.stem] = "unreadable"
    return facts


def _json_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def model_state(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The served model: the store's revision and manifest digest, vLLM's current release."""
    store = facts.get("llmhost_model_store") or {}
    vllm = facts.get("llmhost_vllm") or {}
    store = store if isinstance(store, dict) else {}
    vllm = vllm if isinstance(vllm, dict) else {}
    release = _json_file(Path(str(vllm.get("root", ""))) / "current" / "release.json")
    return {
        "name": store.get("name", ""),
        "revision": store.get("revision", ""),
        "manifest_sha256": store.get("manifest_sha256", ""),
        "vllm_release": release.get("release", ""),
        "vllm_package": f"{release.get('package', '')}=={release.get('version', '')}"
        if release
        else "",
        "vllm_model_revision": release.get("model_revision", ""),
    }


def collect(
    *,
    host: str,
    run_id: str,
    collected_at: str,
    dpkg_status: Path,
    venv_roots: Iterable[str],
    venv_max_depth: int,
    units: Iterable[str],
    files: Iterable[str],
    facts_dir: Path,
    certificate: str,
    machine_id_file: Path,
    run_specific: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The host's state document (host_state.json)."""
    packages = parse_dpkg_status(
        dpkg_status.read_text(encoding="utf-8", errors="replace") if dpkg_status.is_file() else ""
    )
    venvs: dict[str, Any] = {}
    for venv in find_venvs(venv_roots, venv_max_depth):
        dists = venv_packages(venv)
        venvs[str(venv)] = {
            "python": venv_python(venv),
            "count": len(dists),
            "sha256": listing_digest(dists),
            "packages": dists,
        }
    facts = read_local_facts(facts_dir)
    gateway = facts.get("llmhost_gateway")
    cert_path = certificate or (gateway.get("certificate", "") if isinstance(gateway, dict) else "")
    tls: dict[str, Any] = {}
    if cert_path and Path(cert_path).is_file():
        try:
            tls = {"certificate": cert_path, **certificate_state(Path(cert_path).read_bytes())}
        except (ValueError, IndexError) as error:  # recorded, so that it shows as a difference
            tls = {"certificate": cert_path, "error": f"not a readable certificate: {error}"}
    machine_id = (
        machine_id_file.read_text(encoding="utf-8").strip() if machine_id_file.is_file() else ""
    )
    state: dict[str, Any] = {
        "schema": SCHEMA,
        "host": host,
        "run_id": run_id,
        "collected_at": collected_at,
        "packages": {
            "count": len(packages),
            "sha256": listing_digest(packages),
            "versions": packages,
        },
        "venvs": venvs,
        "units": file_digests(units),
        "files": file_digests(files),
        "local_facts": facts,
        "model": model_state(facts),
        "tls": tls,
        "machine_id_sha256": hashlib.sha256(machine_id.encode()).hexdigest() if machine_id else "",
    }
    state["run_specific"] = mark_run_specific(flatten(state), run_specific, tls)
    return state


# --- comparison ------------------------------------------------------------------------


def _flatten_value(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten_value(f"{prefix}.{key}", value[key], out)
    elif isinstance(value, (dict, list)):
        out[prefix] = json.dumps(value, sort_keys=True)
    else:
        out[prefix] = value


def flatten(state: Mapping[str, Any]) -> dict[str, Any]:
    """``key -> value`` of everything compared: ``package:<name>:<arch>``,
    ``venv:<path>:<dist>``, ``venv_python:<path>``, ``unit:<path>``, ``file:<path>``,
    ``fact:<fact>.<field>``, ``model:<field>``, ``tls:<field>``, ``host:machine_id_sha256``.
    Listing digests are left out (each entry is compared)."""
    out: dict[str, Any] = {}
    for name, version in (state.get("packages") or {}).get("versions", {}).items():
        out[f"package:{name}"] = version
    for path, venv in (state.get("venvs") or {}).items():
        out[f"venv_python:{path}"] = venv.get("python", "")
        for name, version in venv.get("packages", {}).items():
            out[f"venv:{path}:{name}"] = version
    for section in ("units", "files"):
        for path, digest in (state.get(section) or {}).items():
            out[f"{section[:-1]}:{path}"] = digest
    for name, fact in (state.get("local_facts") or {}).items():
        _flatten_value(f"fact:{name}", fact, out)
    for section in ("model", "tls"):
        for key, value in (state.get(section) or {}).items():
            out[f"{section}:{key}"] = value
    if state.get("machine_id_sha256"):
        out["host:machine_id_sha256"] = state["machine_id_sha256"]
    return dict(sorted(out.items()))


def _rule_applies(rule: Mapping[str, Any], tls: Mapping[str, Any]) -> bool:
    return not rule.get("self_signed_only") or bool(tls.get("self_signed"))


def mark_run_specific(
    flat: Mapping[str, Any], rules: Iterable[Mapping[str, Any]], tls: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The keys of this state a rebuild changes by design, each with its rule's reason.
    A rule: ``{key: <fnmatch pattern>, reason: ..., self_signed_only: bool}``; the last
    applies it only when the gateway's certificate is self-signed (generated on the host)."""
    marked: dict[str, str] = {}
    for rule in rules:
        if not _rule_applies(rule, tls):
            continue
        for key in flat:
            if key not in marked and fnmatch.fnmatchcase(key, str(rule["key"])):
                marked[key] = str(rule.get("reason", ""))
    return [{"key": key, "reason": marked[key]} for key in sorted(marked)]


def compare(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> dict[str, Any]:
    """The drift report of one host: identical when only run-specific keys differ."""
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "host": current.get("host", ""),
        "run_id": current.get("run_id", ""),
        "previous_run": None,
        "identical": None,
        "summary": FIRST_RUN,
        "compared_keys": 0,
        "differences": [],
        "run_specific": [],
    }
    if not previous:
        return report
    before, after = flatten(previous), flatten(current)
    reasons = {m["key"]: m["reason"] for m in previous.get("run_specific") or []}
    reasons.update({m["key"]: m["reason"] for m in current.get("run_specific") or []})
    differences: list[dict[str, Any]] = []
    expected: list[dict[str, Any]] = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if key in reasons:
            expected.append({"key": key, "previous": old, "current": new, "reason": reasons[key]})
        else:
            differences.append({"key": key, "previous": old, "current": new})
    identical = not differences
    report.update(
        previous_run=previous.get("run_id") or "unknown",
        identical=identical,
        compared_keys=len(set(before) | set(after)),
        differences=differences,
        run_specific=expected,
        summary=(
            f"identical to run {previous.get('run_id')}"
            + (f" except {len(expected)} run-specific value(s)" if expected else "")
            if identical
            else f"{len(differences)} difference(s) from run {previous.get('run_id')}"
            + (f", and {len(expected)} run-specific value(s)" if expected else "")
        ),
    )
    return report


def _cell(value: Any) -> str:
    text = "(absent)" if value is None else str(value)
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def render_markdown(report: Mapping[str, Any]) -> str:
    """drift_report.md: the verdict, then each difference and each run-specific change."""
    verdict = {True: "identical", False: "different", None: "no comparison"}[report["identical"]]
    lines = [
        f"# Drift report: {report['host']}",
        "",
        f"Run `{report['run_id']}` compared with the previous run of this inventory"
        f" (`{report['previous_run']}`): **{verdict}**. {report['summary']}.",
        "",
    ]
    if report["previous_run"] is None:
        lines += ["The state of this run is kept for the next run to compare with.", ""]
        return "\n".join(lines)
    lines += [f"{report['compared_keys']} keys compared.", ""]
    for title, rows, extra in (
        ("Differences", report["differences"], False),
        ("Run-specific (expected to change on a rebuild)", report["run_specific"], True),
    ):
        lines += [f"## {title}", ""]
        if not rows:
            lines += ["None.", ""]
            continue
        header = "| key | previous | current |" + (" reason |" if extra else "")
        lines += [header, "|---|---|---|" + ("---|" if extra else "")]
        for row in rows:
            cells = [_cell(row["key"]), _cell(row["previous"]), _cell(row["current"])]
            if extra:
                cells.append(str(row["reason"]).replace("|", "\\|"))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def read_state(path: Path) -> dict[str, Any] | None:
    """A cached state, None when there is none (the first run of an inventory) or it is
    not a host state document."""
    data = _json_file(path)
    return data if data.get("schema") == SCHEMA else None
