"""Repository conventions every role must keep (the CI check of prometheus-community,
made stricter): defaults and argument specs in step, README, Molecule + testinfra.

An internal role (name starting with "_", e.g. _common) is called only with include_role
and tasks_from: it has entry points instead of tasks/main.yml, and inputs without a
default are marked required."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())
ROLE_IDS = [p.name for p in ROLES]


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _internal(role: Path) -> bool:
    return role.name.startswith("_")


def _entry_points(role: Path) -> dict[str, Any]:
    return _load(role / "meta" / "argument_specs.yml")["argument_specs"]


def _specs(role: Path) -> dict[str, Any]:
    """The inputs: main's, or for an internal role those of all its entry points."""
    specs = _entry_points(role)
    if not _internal(role):
        return specs["main"]["options"]
    return {k: v for entry in specs.values() for k, v in entry["options"].items()}


def test_there_are_roles() -> None:
    assert ROLES, "roles/ is empty"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_role_has_required_files(role: Path) -> None:
    for need in (
        "README.md",
        "defaults/main.yml",
        "meta/main.yml",
        "meta/argument_specs.yml",
        *(
            [f"tasks/{entry}.yml" for entry in _entry_points(role)]
            if _internal(role)
            else ["tasks/main.yml"]
        ),
        "molecule/default/molecule.yml",
    ):
        assert (role / need).is_file(), f"roles/{role.name}: {need} is missing"
    tests = list((role / "molecule" / "default" / "tests").glob("test_*.py"))
    assert tests, f"roles/{role.name}: no testinfra verifier in molecule/default/tests/"


SCENARIOS = sorted((ROOT / "roles").glob("*/molecule/*/molecule.yml"))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[str(p.parent) for p in SCENARIOS])
def test_scenario_states_only_what_differs(scenario: Path) -> None:
    """molecule/base.yml holds the platform and the shared converge (molecule/README.md):
    a scenario restates no container platform, and names a converge.yml it keeps."""
    config = _load(scenario) or {}
    name = scenario.parent.relative_to(ROOT)
    for platform in config.get("platforms", []):
        assert "image" not in platform, f"{name}: the platform belongs in molecule/base.yml"
    playbooks = (config.get("provisioner") or {}).get("playbooks") or {}
    for step in ("converge", "prepare", "side_effect", "destroy"):
        if (scenario.parent / f"{step}.yml").is_file():
            assert playbooks.get(step) == f"{step}.yml", (
                f"{name}: {step}.yml is not used: name it under provisioner.playbooks"
            )


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_defaults_and_specs_declare_the_same_keys(role: Path) -> None:
    defaults = _load(role / "defaults" / "main.yml") or {}
    specs = {k: v for k, v in _specs(role).items() if not v.get("required")}
    assert set(defaults) == set(specs), (
        f"roles/{role.name}: only in defaults {sorted(set(defaults) - set(specs))}, "
        f"only in argument_specs {sorted(set(specs) - set(defaults))}"
    )


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_spec_defaults_equal_role_defaults(role: Path) -> None:
    defaults = _load(role / "defaults" / "main.yml") or {}
    for key, spec in _specs(role).items():
        assert "default" in spec or spec.get("required"), f"{role.name}.{key}: no default"
        if "default" in spec:
            assert spec["default"] == defaults.get(key), (
                f"roles/{role.name}: {key} default differs between defaults/main.yml "
                f"({defaults.get(key)!r}) and meta/argument_specs.yml ({spec['default']!r})"
            )
        assert spec.get("description"), f"{role.name}.{key}: no description"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_variables_are_role_prefixed(role: Path) -> None:
    prefix = role.name + "_"
    for key in _specs(role):
        assert key.startswith(prefix), f"roles/{role.name}: {key} lacks the {prefix} prefix"
    internal = role / "vars" / "main.yml"
    if internal.is_file():
        for key in _load(internal) or {}:
            assert key.startswith("_" + prefix), f"roles/{role.name}/vars: {key} is not _{prefix}*"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_readme_documents_every_variable(role: Path) -> None:
    readme = (role / "README.md").read_text(encoding="utf-8")
    missing = [k for k in _specs(role) if f"`{k}`" not in readme]
    assert not missing, f"roles/{role.name}/README.md does not document {missing}"
    assert re.search(r"^## Example", readme, re.M), f"roles/{role.name}/README.md: no example"


@pytest.mark.parametrize("role", ROLES, ids=ROLE_IDS)
def test_tasks_are_split_by_phase_and_tagged(role: Path) -> None:
    if _internal(role):  # entry points (tasks_from), tagged where they are included
        assert not (role / "tasks" / "main.yml").exists(), f"roles/{role.name}: internal"
        return
    main = _load(role / "tasks" / "main.yml")
    assert len(main) >= 2, f"roles/{role.name}: tasks/main.yml should import phase files"
    for entry in main:
        assert entry.get("tags"), f"roles/{role.name}: '{entry.get('name')}' has no tags"
        assert role.name in entry["tags"], f"roles/{role.name}: '{entry['name']}' lacks tag"


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```")[1]
    commands = [ln for ln in first_block.splitlines()[1:] if ln.strip()]
    assert commands == ["make lab", "make test"], commands


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_requirements_are_pinned_exactly() -> None:
    for req in ("requirements.txt", "constraints.txt", "training/requirements.txt"):
        for line in (ROOT / req).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][^ ]*", line), (
                    f"{req}: '{line}' is not an exact pin"
                )
