"""llmhost.core's module_utils.module: run_module builds the AnsibleModule, calls the handler
and maps its result or failure to exit_json / fail_json; and one converted module's handler
called directly, the way the others can be."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)
from ansible_collections.llmhost.core.plugins.modules import disk_space, evidence_manifest

SPEC = {"name": {"type": "str", "required": True}, "count": {"type": "int", "default": 1}}


class DomainError(Exception):
    pass


def outcome(
    capsys: pytest.CaptureFixture[str],
    args: dict[str, Any],
    handler: Any,
    **options: Any,
) -> tuple[int, dict[str, Any]]:
    """(exit code, the JSON the module printed) of one run_module call."""
    with patch_module_args(args), pytest.raises(SystemExit) as done:
        run_module(SPEC, handler, **options)
    return int(done.value.code or 0), json.loads(capsys.readouterr().out)


def test_result_is_exit_json(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Mapping[str, Any]:
        seen.append(request)
        return {"changed": True, "greeting": f"hello {request.params['name']}"}

    code, result = outcome(capsys, {"name": "x"}, handler)
    assert code == 0
    assert result["changed"] is True
    assert result["greeting"] == "hello x"
    assert seen[0].params["count"] == 1  # defaults applied before the handler
    assert seen[0].check_mode is False
    assert seen[0].module is not None


def test_check_mode_reaches_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(request: Request) -> Mapping[str, Any]:
        return {"changed": False, "check": request.check_mode}

    _, result = outcome(capsys, {"name": "x", "_ansible_check_mode": True}, handler)
    assert result["check"] is True


def test_module_failure_is_fail_json_with_its_keys(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(request: Request) -> Mapping[str, Any]:
        raise ModuleFailure("count must be >= 1", rc=3, errors=["count"])

    code, result = outcome(capsys, {"name": "x"}, handler)
    assert code == 1
    assert result["failed"] is True
    assert result["msg"] == "count must be >= 1"
    assert result["rc"] == 3
    assert result["errors"] == ["count"]


def test_listed_domain_errors_fail_with_their_text(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(request: Request) -> Mapping[str, Any]:
        raise DomainError("the wheel's sha256 differs: fix the pin")

    code, result = outcome(capsys, {"name": "x"}, handler, errors=(DomainError,))
    assert code == 1
    assert result["msg"] == "the wheel's sha256 differs: fix the pin"


def test_other_errors_are_not_swallowed() -> None:
    def handler(request: Request) -> Mapping[str, Any]:
        raise DomainError("boom")

    with patch_module_args({"name": "x"}), pytest.raises(DomainError):
        run_module(SPEC, handler)


def test_argument_spec_errors_fail_before_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(request: Request) -> Mapping[str, Any]:
        raise AssertionError("not called")

    code, result = outcome(capsys, {}, handler)
    assert code == 1
    assert "name" in result["msg"]


def test_check_mode_refused_when_unsupported(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(request: Request) -> Mapping[str, Any]:
        raise AssertionError("not called")

    code, result = outcome(
        capsys, {"name": "x", "_ansible_check_mode": True}, handler, supports_check_mode=False
    )
    assert code == 0
    assert result["skipped"] is True


def test_options_reach_ansible_module(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(request: Request) -> Mapping[str, Any]:
        raise AssertionError("not called")

    code, result = outcome(
        capsys, {"name": "x", "count": 2}, handler, mutually_exclusive=[("name", "count")]
    )
    assert code == 1
    assert "mutually exclusive" in result["msg"]


def test_handlers_run_without_ansible(tmp_path: Path) -> None:
    result = disk_space.handle(Request({"path": str(tmp_path / "new")}))
    assert result["changed"] is False
    assert result["existing"] == str(tmp_path)
    with pytest.raises(ModuleFailure, match="path must be absolute, got 'relative'"):
        disk_space.handle(Request({"path": "relative"}))


def test_manifest_handler_honours_check_mode(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n", encoding="utf-8")
    params = {"path": str(tmp_path), "state": "present", "mode": "0644"}
    dry = evidence_manifest.handle(Request(params, check_mode=True))
    assert dry["changed"] is True
    assert not (tmp_path / evidence_manifest.MANIFEST_NAME).exists()
    done = evidence_manifest.handle(Request(params))
    assert done["changed"] is True
    assert done["file_count"] == 1
    verified = evidence_manifest.handle(Request({**params, "state": "verified"}))
    assert verified["changed"] is False
    (tmp_path / "a.txt").write_text("b\n", encoding="utf-8")
    with pytest.raises(ModuleFailure) as failed:
        evidence_manifest.handle(Request({**params, "state": "verified"}))
    assert "changed: a.txt" in failed.value.msg
    assert failed.value.result["mismatched"] == ["a.txt"]
    with pytest.raises(ModuleFailure, match="is not an octal string"):
        evidence_manifest.handle(Request({**params, "mode": "rw"}))
