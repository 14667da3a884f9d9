"""llmhost.core.evidence_ledger callback: run_ledger.json in the bundle (what ansible-runner
does not record: who, git state, inventory, redacted extra vars), secrets redacted; no
per-task ledger and no reseal of the manifest at exit any more (runner's job_events and
the entry point's final seal); inert without a bundle. The helpers are tested directly,
the callback in real ansible-playbook runs on localhost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.llmhost.core.plugins.callback import evidence_ledger as el
from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import seal, verify

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK_BIN = Path(sys.executable).parent / "ansible-playbook"
KEY = "pytestLedgerKey0123456789abcdef"  # a test key
TOKEN = "hf_pytestLedgerToken0123456789"  # noqa: S105 (a test token)
PLAY = [
    {
        "name": "Ledger test",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"name": "Plain", "ansible.builtin.command": "echo hello", "changed_when": False},
            {
                "name": "Touches the key",
                "ansible.builtin.debug": {"msg": "{{ api_key }}"},
                "no_log": True,
            },
            {"name": "Leaks the key", "ansible.builtin.debug": {"msg": "the key is {{ api_key }}"}},
            {"name": "Skipped", "ansible.builtin.debug": {"msg": "x"}, "when": False},
            {
                "name": "Fails, ignored",
                "ansible.builtin.command": "/bin/false",
                "ignore_errors": True,
            },
            {
                "name": "Loop",
                "ansible.builtin.debug": {"msg": "{{ item }}"},
                "loop": [1, 2],
                "changed_when": True,
                "notify": "Handler",
            },
        ],
        "handlers": [{"name": "Handler", "ansible.builtin.debug": {"msg": "handled"}}],
    }
]


# --- helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "vllm_api_key",
        "hf_token",
        "HF_TOKEN",
        "ansible_become_pass",
        "apiKey",
        "db_password",
        "mysecretvalue",
        "key",
        "Authorization",
    ],
)
def test_secret_names(name: str) -> None:
    assert el.secret_key(name)


@pytest.mark.parametrize(
    "name", ["max_tokens", "tokens_per_s", "sort_keys", "monkey", "passed", "keyword", "route"]
)
def test_ordinary_names(name: str) -> None:
    assert not el.secret_key(name)


def test_redact_replaces_secret_values_and_collects_them() -> None:
    found: list[str] = []
    data = {
        "route": "local_cpu",
        "llmhost_hf_token": TOKEN,
        "tenants": [{"name": "a", "key": KEY, "rate": 10}],
        "empty_password": "",
    }
    assert el.redact(data, found) == {
        "route": "local_cpu",
        "llmhost_hf_token": el.REDACTED,
        "tenants": [{"name": "a", "key": el.REDACTED, "rate": 10}],
        "empty_password": "",
    }
    assert sorted(found) == sorted([TOKEN, KEY])


def test_vaulted_values_are_redacted_whatever_their_name() -> None:
    from ansible.parsing.vault import EncryptedString

    vaulted = EncryptedString(ciphertext="$ANSIBLE_VAULT;1.1;AES256\n3132")
    assert el.redact({"harmless_name": vaulted}, []) == {"harmless_name": el.REDACTED}


def test_inventory_name_and_bundle(tmp_path: Path) -> None:
    inv = tmp_path / "inventories" / "lab"
    inv.mkdir(parents=True)
    (inv / "hosts.yml").write_text("all: {}\n", encoding="utf-8")
    assert el.inventory_name([str(inv)]) == "lab"
    assert el.inventory_name([str(inv / "hosts.yml")]) == "lab"
    assert el.inventory_name(["localhost,"]) == "adhoc"
    assert el.resolve_bundle(str(tmp_path / "b"), "ignored", tmp_path, []) == tmp_path / "b"
    assert el.resolve_bundle(None, "run1", tmp_path, [str(inv)]) == tmp_path / "evidence/lab/run1"
    assert el.resolve_bundle(None, "../escape", tmp_path, [str(inv)]) is None
    assert el.resolve_bundle(None, None, tmp_path, [str(inv)]) is None


def test_secrets_are_read_from_files_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "vllm_api_key").write_text(KEY, encoding="utf-8")
    (folder / "salted").write_text("Passw0rdValue salt=abcdefgh\n", encoding="utf-8")
    (folder / "short").write_text("abc", encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert el.read_secrets(folder, [""]) == sorted(
        {KEY, TOKEN, "Passw0rdValue"}, key=len, reverse=True
    )


def test_run_ledger_keeps_one_entry_per_invocation(tmp_path: Path) -> None:
    path = tmp_path / "run_ledger.json"
    el.update_run_ledger(
        path, "r", "evidence/lab/r", {"id": "b", "started_at": "2", "playbook": "eval.yml"}
    )
    el.update_run_ledger(
        path, "r", "evidence/lab/r", {"id": "a", "started_at": "1", "playbook": "lab.yml"}
    )
    el.update_run_ledger(
        path,
        "r",
        "evidence/lab/r",
        {"id": "b", "started_at": "2", "playbook": "eval.yml", "status": "x"},
    )
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["playbooks"] == ["lab.yml", "eval.yml"]
    assert [r["id"] for r in data["invocations"]] == ["a", "b"]
    assert data["invocations"][1]["status"] == "x"


# --- real runs ---------------------------------------------------------------------


def _run(tmp_path: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    play = tmp_path / "ledger_test.yml"
    play.write_text(yaml.safe_dump(PLAY, sort_keys=False), encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHOST_", "HF_"))}
    base.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_CALLBACKS_ENABLED="llmhost.core.evidence_ledger",
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_FACT_CACHING="memory",
        ANSIBLE_NOCOLOR="1",
        **env,
    )
    cmd = [
        str(PLAYBOOK_BIN),
        "-i",
        "localhost,",
        "-c",
        "local",
        str(play),
        "-e",
        f"api_key={KEY}",
        *extra,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=base, cwd=tmp_path, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def ledger_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    tmp_path = tmp_path_factory.mktemp("ledger")
    bundle = tmp_path / "evidence" / "lab" / "run1"
    bundle.mkdir(parents=True)
    (bundle / "environment_report.json").write_text("{}\n", encoding="utf-8")
    seal(bundle)  # the evidence role sealed during the run: the callback leaves it alone
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "vllm_api_key").write_text(KEY, encoding="utf-8")
    env = {
        "LLMHOST_EVIDENCE_DIR": str(bundle),
        "LLMHOST_ROOT": str(ROOT),
        "LLMHOST_SECRETS_DIR": str(secrets),
        "HF_TOKEN": TOKEN,
    }
    out = _run(tmp_path, env, "-e", json.dumps({"nested": {"hf_token": TOKEN}, "route": "lab"}))
    return bundle, out


def test_secrets_never_written(ledger_run: tuple[Path, Any]) -> None:
    bundle, out = ledger_run
    assert out.returncode == 0, out.stdout + out.stderr
    for path in bundle.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert KEY not in text and TOKEN not in text, path


def test_run_ledger_has_what_runner_does_not_record(ledger_run: tuple[Path, Any]) -> None:
    bundle, _ = ledger_run
    ledger = json.loads((bundle / "run_ledger.json").read_text(encoding="utf-8"))
    assert ledger["schema"] == "llmhost.run_ledger/v2" and ledger["run_id"] == "run1"
    (run,) = ledger["invocations"]
    assert run["extra_vars"] == {
        "api_key": el.REDACTED,
        "nested": {"hf_token": el.REDACTED},
        "route": "lab",
    }
    assert run["inventory"] == {"name": "adhoc", "sources": ["localhost,"]}
    assert len(run["git"]["sha"]) == 40 and isinstance(run["git"]["dirty"], bool)
    assert isinstance(run["git"]["dirty_files"], list)
    assert run["user"] and run["control_host"] and run["started_at"]
    assert run["playbook"].endswith("ledger_test.yml") and run["ansible_core"]
    # What runner records (command line, plays, recap, task results, status) is not here.
    assert not {"argv", "plays", "recap", "tasks", "ledger", "status", "ended_at"} & set(run)


def test_no_per_task_ledger_and_no_reseal_at_exit(ledger_run: tuple[Path, Any]) -> None:
    bundle, _ = ledger_run
    assert not (bundle / "ledger").exists()
    found = verify(bundle)  # sealed before the run; the ledger written since is extra
    assert found.extra == ["run_ledger.json"] and not found.mismatched, found


def test_without_a_bundle_the_callback_does_nothing(tmp_path: Path) -> None:
    out = _run(tmp_path, {"LLMHOST_ROOT": str(tmp_path)})
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger_test.yml"]


def test_run_id_alone_finds_the_bundle_under_the_repository(tmp_path: Path) -> None:
    out = _run(tmp_path, {"LLMHOST_ROOT": str(tmp_path), "LLMHOST_RUN_ID": "run2"})
    assert out.returncode == 0, out.stdout + out.stderr
    bundle = tmp_path / "evidence" / "adhoc" / "run2"
    assert sorted(p.name for p in bundle.iterdir()) == ["run_ledger.json"]


def test_callback_documents_itself() -> None:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"))
    cmd = [
        str(PLAYBOOK_BIN.parent / "ansible-doc"),
        "-j",
        "-t",
        "callback",
        "llmhost.core.evidence_ledger",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)["llmhost.core.evidence_ledger"]["doc"]
    assert doc["short_description"]
    env_names = {o: [e["name"] for e in spec.get("env", [])] for o, spec in doc["options"].items()}
    assert env_names["evidence_dir"] == ["LLMHOST_EVIDENCE_DIR"]
    assert env_names["run_id"] == ["LLMHOST_RUN_ID"]
