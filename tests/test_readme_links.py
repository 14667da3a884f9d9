"""Every link in the repository's Markdown resolves: relative links ([text](path)) point at
a file or folder that exists, and a code span naming a repository path (`roles/x/...`,
`scripts/x.py`) names one the repository has. Web links and anchors are not checked."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = (
    "roles",
    "playbooks",
    "inventories",
    "scripts",
    "tests",
    "training",
    "molecule",
    "collections",
    "docs",
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SPAN = re.compile(r"`([^`\s]+)`")
# Inside a role's README, its own folders are named relative to the role.
ROLE_DIRS = ("tasks", "templates", "files", "defaults", "meta", "handlers", "vars", "molecule")
PLACEHOLDER = re.compile(r"[<>*{}$]|\.\.\.")


def _markdown_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "*.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def _generated(path: str) -> bool:
    """A path git ignores is written by a command (e.g. the lab's vault by lab-init.sh)."""
    found = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    return found.returncode == 0


def _broken(md: Path) -> list[str]:
    text = md.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks show commands, not links
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if path and not (md.parent / path).exists() and not (ROOT / path).exists():
            broken.append(f"link {target}")
    for span in SPAN.findall(text):
        path = span.rstrip(".,:;").split("#", 1)[0].split(":", 1)[0]
        tops = TOP + (ROLE_DIRS if md.parent.parent.name == "roles" else ())
        if not path.startswith(tuple(f"{top}/" for top in tops)) or PLACEHOLDER.search(path):
            continue
        if not (ROOT / path).exists() and not (md.parent / path).exists() and not _generated(path):
            broken.append(f"path `{span}`")
    return broken


@pytest.mark.parametrize("md", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(md: Path) -> None:
    assert _broken(md) == []


def test_the_check_finds_a_broken_link_and_a_missing_path(tmp_path: Path) -> None:
    md = tmp_path / "README.md"
    md.write_text(
        "See [the runbook](docs/nowhere.md), [web](https://example.org), [top](#top),\n"
        "`scripts/llmhost.py`, `scripts/no_such_script.py` and `roles/<role>/README.md`.\n",
        encoding="utf-8",
    )
    assert _broken(md) == ["link docs/nowhere.md", "path `scripts/no_such_script.py`"]
