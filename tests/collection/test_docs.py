"""Every plugin of llmhost.core documents itself: ansible-doc renders each one."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "collections" / "ansible_collections" / "llmhost" / "core" / "plugins"
MODULES = sorted(p.stem for p in (PLUGINS / "modules").glob("*.py"))
FILTERS = sorted(p.stem for p in (PLUGINS / "filter").glob("*.yml"))


@functools.cache
def _docs(kind: str) -> tuple[dict[str, Any], str]:
    """ansible-doc of every plugin of a kind in one call (one interpreter start, not one a
    plugin): the rendered docs by full name, and what it printed to stderr."""
    names = MODULES if kind == "module" else FILTERS
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"))
    cmd = [str(Path(sys.executable).parent / "ansible-doc"), "-j", "-t", kind]
    cmd += [f"llmhost.core.{name}" for name in names]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out.stderr


def _doc(kind: str, name: str) -> dict[str, Any]:
    docs, stderr = _docs(kind)
    full = f"llmhost.core.{name}"
    # A plugin ansible-doc cannot parse or find is missing from the docs, with a warning.
    said = [line for line in stderr.splitlines() if re.search(rf"\b{re.escape(full)}\b", line)]
    assert not said, said
    assert full in docs, stderr
    return docs[full]


@pytest.mark.parametrize("name", MODULES)
def test_module_documents_itself(name: str) -> None:
    doc = _doc("module", name)
    assert doc["doc"]["short_description"]
    assert doc["examples"]
    assert doc["return"]


@pytest.mark.parametrize("name", FILTERS)
def test_filter_documents_itself(name: str) -> None:
    assert _doc("filter", name)["doc"]["short_description"]
