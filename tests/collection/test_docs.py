"""Every plugin of llmhost.core documents itself: ansible-doc renders each one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "collections" / "ansible_collections" / "llmhost" / "core" / "plugins"
MODULES = sorted(p.stem for p in (PLUGINS / "modules").glob("*.py"))
FILTERS = sorted(p.stem for p in (PLUGINS / "filter").glob("*.yml"))


def _doc(kind: str, name: str) -> dict[str, object]:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"))
    cmd = [
        str(Path(sys.executable).parent / "ansible-doc"),
        "-j",
        "-t",
        kind,
        f"llmhost.core.{name}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert "Unable to parse" not in out.stderr, out.stderr
    return json.loads(out.stdout)[f"llmhost.core.{name}"]


@pytest.mark.parametrize("name", MODULES)
def test_module_documents_itself(name: str) -> None:
    doc = _doc("module", name)
    assert doc["doc"]["short_description"]
    assert doc["examples"]
    assert doc["return"]


@pytest.mark.parametrize("name", FILTERS)
def test_filter_documents_itself(name: str) -> None:
    assert _doc("filter", name)["doc"]["short_description"]
