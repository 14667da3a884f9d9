"""testinfra checks of model_store: layout, ownership and modes, the manifest, the
published facts, the evidence, and (after the side effect) the repair."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "files" / "fake-model"
MODEL_DIR = "/srv/llmhost/models/tiny-gpt2"
EVIDENCE = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
REPAIR_EVIDENCE = EVIDENCE.parent / "evidence-repair"


def _fixture_manifest() -> str:
    lines = []
    for path in sorted(p for p in FIXTURE.rglob("*") if p.is_file()):
        rel = path.relative_to(FIXTURE).as_posix()
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}\n")
    return "".join(sorted(lines, key=lambda ln: ln.split("  ", 1)[1]))


MANIFEST = _fixture_manifest()
MANIFEST_SHA256 = hashlib.sha256(MANIFEST.encode()).hexdigest()
REVISION = "local-" + MANIFEST_SHA256[:12]
STORED = f"{MODEL_DIR}/{REVISION}"
FILES = [ln.split("  ", 1)[1] for ln in MANIFEST.splitlines()]


def test_layout_is_root_name_revision_with_no_leftovers(host) -> None:
    assert host.file(STORED).is_directory
    entries = host.check_output(f"ls -A {MODEL_DIR}").split()
    assert entries == [REVISION], "a staging folder or another revision was left behind"
    listed = host.check_output(f"cd {STORED} && find . -type f | sort").splitlines()
    assert sorted(listed) == sorted(
        [f"./{f}" for f in FILES] + ["./.llmhost-manifest.sha256", "./.llmhost-manifest.json"]
    )


def test_group_is_a_system_group(host) -> None:
    group = host.group("llmhost")
    assert group.exists
    assert group.gid < 1000


@pytest.mark.parametrize(
    "path",
    ["/srv/llmhost/models", MODEL_DIR, STORED, f"{STORED}/original"],
)
def test_folders_are_root_llmhost_0750(host, path: str) -> None:
    f = host.file(path)
    assert (f.user, f.group, f.mode) == ("root", "llmhost", 0o750)


@pytest.mark.parametrize("name", [*FILES, ".llmhost-manifest.sha256", ".llmhost-manifest.json"])
def test_files_are_root_llmhost_0640(host, name: str) -> None:
    f = host.file(f"{STORED}/{name}")
    assert f.is_file and not f.is_symlink
    assert (f.user, f.group, f.mode) == ("root", "llmhost", 0o640)


def test_content_equals_the_source(host) -> None:
    for name in FILES:
        want = hashlib.sha256((FIXTURE / name).read_bytes()).hexdigest()
        assert host.file(f"{STORED}/{name}").sha256sum == want, name


def test_manifest_is_exact_and_sha256sum_checks_it(host) -> None:
    assert host.file(f"{STORED}/.llmhost-manifest.sha256").content_string == MANIFEST
    out = host.run(f"cd {STORED} && sha256sum --strict -c .llmhost-manifest.sha256")
    assert out.rc == 0, out.stdout + out.stderr
    record = json.loads(host.file(f"{STORED}/.llmhost-manifest.json").content_string)
    assert record["schema"] == "llmhost.model_store/v1"
    assert record["revision"] == REVISION
    assert record["manifest_sha256"] == MANIFEST_SHA256
    assert record["file_count"] == len(FILES)
    assert record["total_bytes"] == sum((FIXTURE / f).stat().st_size for f in FILES)


def test_serving_user_reads_and_others_do_not(host) -> None:
    ok = host.run(f"runuser -u vllm -- cat {STORED}/config.json")
    assert ok.rc == 0 and '"gpt2"' in ok.stdout, ok.stderr
    denied = host.run(f"runuser -u nobody -- cat {STORED}/config.json")
    assert denied.rc != 0


def test_published_facts(host) -> None:
    facts = json.loads(host.file("/root/model_store_facts.json").content_string)
    assert facts == {
        "model_store_model_path": STORED,
        "model_store_revision_resolved": REVISION,
        "model_store_manifest_sha256": MANIFEST_SHA256,
    }


def test_evidence_in_the_bundle() -> None:
    assert (EVIDENCE / "model_manifest.sha256").read_text(encoding="utf-8") == MANIFEST
    record = json.loads((EVIDENCE / "model_store.json").read_text(encoding="utf-8"))
    assert record["run_id"] == "molecule"
    assert record["action"] == "stored"
    assert record["path"] == STORED
    assert record["manifest_sha256"] == MANIFEST_SHA256
    assert sorted(record["fetched"]) == sorted(FILES)


def test_repair_after_the_side_effect_is_recorded() -> None:
    if not REPAIR_EVIDENCE.exists():
        pytest.skip("the side effect has not run yet")
    record = json.loads((REPAIR_EVIDENCE / "model_store.json").read_text(encoding="utf-8"))
    assert record["run_id"] == "molecule-repair"
    assert record["action"] == "repaired"
    assert record["fetched"] == ["model.safetensors", "original/params.json", "tokenizer.json"]
    assert record["removed"] == ["pytorch_model.bin"]
    assert record["modes_fixed"] == ["config.json"]
    assert record["manifest_sha256"] == MANIFEST_SHA256
