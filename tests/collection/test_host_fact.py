"""llmhost.core.host_fact: a role's result recorded on the host as a local fact."""

from __future__ import annotations

import json
from pathlib import Path

from ansible_collections.llmhost.core.plugins.modules import host_fact


def test_render_is_stable() -> None:
    assert host_fact.render({"b": 1, "a": "x"}) == host_fact.render({"a": "x", "b": 1})


def test_write_then_read_back_every_fact(tmp_path: Path) -> None:
    (tmp_path / "other.fact").write_text('{"k": 2}', encoding="utf-8")
    (tmp_path / "broken.fact").write_text("{not json", encoding="utf-8")
    target = tmp_path / "llmhost_x.fact"
    host_fact.write_atomic(target, host_fact.render({"path": "/srv/m"}))
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    facts = host_fact.read_local_facts(tmp_path)
    assert facts == {"other": {"k": 2}, "llmhost_x": {"path": "/srv/m"}}
    assert json.loads(target.read_text(encoding="utf-8")) == {"path": "/srv/m"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_missing_folder_has_no_facts(tmp_path: Path) -> None:
    assert host_fact.read_local_facts(tmp_path / "absent") == {}
