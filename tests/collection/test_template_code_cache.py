"""The strategy shims compile each Jinja template once per control node
(plugin_utils/template_code_cache.py): what is rendered is what Ansible renders without the
cache, whatever the template's settings; the next process loads instead of compiling; an
error is an error every time; a damaged or unsafe cache is not trusted."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible._internal._templating._jinja_bits import AnsibleEnvironment
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.llmhost.core.plugins.plugin_utils import template_code_cache as cache
from role_runner import run_play

ROOT = Path(__file__).resolve().parents[2]
VARS = {"x": "hi", "n": 3, "items": [1, 2, 3], "path": "c:\\new"}
TEMPLATES = [
    "{{ x | upper }} {% for i in items %}{{ i }}{% endfor %}",
    "{{ items | map('string') | join(',') }}-{{ n * 2 }}",
    "{{ 'c:\\newfile' }} {{ path }}",  # a backslash in a constant: Ansible's escaping
    "{% if n > 2 %}big{% else %}small{% endif %}",
    # The same text under other delimiters (a #jinja2: header) is another program.
    "#jinja2:variable_start_string:'[%', variable_end_string:'%]'\n[% x %] {{ x }}",
    "{{ x }} {{ x }}\n\n",  # trailing newlines kept
]
CONDITIONALS = [
    ("n > 2 and x is match('^h')", True),
    ("items | length == 2", False),
    ("'c:\\new' == path", False),  # Ansible escapes a constant's backslash: not equal
]
STRATEGIES = [
    "ansible_collections.llmhost.core.plugins.strategy.mitogen_linear",
    "ansible_collections.llmhost.core.plugins.strategy.mitogen_docker_linear",
]


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The cache installed for this test only, its folder under TMP_PATH; the folder."""
    with _pristine():
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        monkeypatch.delenv(cache.ENV, raising=False)
        assert cache.install() is True
        yield tmp_path / "xdg" / "llmhost" / "ansible-template-code"


@contextlib.contextmanager
def _pristine() -> Iterator[None]:
    """Jinja's own methods and an empty cache inside; outside, what was there before (a
    strategy shim imported by another test of this process installs the cache too)."""
    before = AnsibleEnvironment.compile, AnsibleEnvironment.compile_expression
    saved, memory = dict(cache._state), dict(cache._memory)
    AnsibleEnvironment.compile = inspect.unwrap(before[0])
    AnsibleEnvironment.compile_expression = inspect.unwrap(before[1])
    _reset()
    try:
        yield
    finally:
        AnsibleEnvironment.compile, AnsibleEnvironment.compile_expression = before
        _reset()
        cache._state.update(saved)
        cache._memory.update(memory)


def _reset() -> None:
    cache._memory.clear()
    cache._state.update(installed=False, disk=None, compiled=0, loaded=0)


def _render(template: str) -> Any:
    return Templar(loader=DataLoader(), variables=VARS).template(trust_as_template(template))


def _condition(expression: str) -> bool:
    templar = Templar(loader=DataLoader(), variables=VARS)
    return templar.evaluate_conditional(trust_as_template(expression))


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.code"))


def test_renders_what_ansible_renders_without_it(installed: Path) -> None:
    uncached_templates = [_render(t) for t in TEMPLATES]
    uncached_conditions = [_condition(e) for e, _ in CONDITIONALS]
    # The uncached results above came from the patched methods too: compare with the
    # original methods themselves, then with the cache twice (compiled, then remembered).
    patched = AnsibleEnvironment.compile, AnsibleEnvironment.compile_expression
    AnsibleEnvironment.compile = inspect.unwrap(patched[0])
    AnsibleEnvironment.compile_expression = inspect.unwrap(patched[1])
    try:
        original_templates = [_render(t) for t in TEMPLATES]
        original_conditions = [_condition(e) for e, _ in CONDITIONALS]
    finally:
        AnsibleEnvironment.compile, AnsibleEnvironment.compile_expression = patched
    assert original_templates[4] == "hi {{ x }}" and original_templates[5] == "hi hi\n\n"
    assert original_conditions == [want for _, want in CONDITIONALS]
    assert uncached_templates == original_templates
    assert uncached_conditions == original_conditions
    compiled = cache.stats()["compiled"]
    assert compiled == len(TEMPLATES) + len(CONDITIONALS), cache.stats()
    assert [_render(t) for t in TEMPLATES] == original_templates  # from memory now
    assert [_condition(e) for e, _ in CONDITIONALS] == original_conditions
    assert cache.stats()["compiled"] == compiled, "a remembered template was compiled again"
    assert len(_files(installed)) == compiled


def test_the_folder_is_private(installed: Path) -> None:
    _render(TEMPLATES[0])
    (folder,) = installed.iterdir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert folder.name.startswith(f"py{sys.version_info[0]}.{sys.version_info[1]}-core")


def test_another_process_loads_instead_of_compiling(installed: Path) -> None:
    expected = [_render(t) for t in TEMPLATES] + [_condition(e) for e, _ in CONDITIONALS]
    script = """
import json
from ansible_collections.llmhost.core.plugins.plugin_utils import template_code_cache as cache
from test_template_code_cache import TEMPLATES, CONDITIONALS, _render, _condition
assert cache.install()
out = [_render(t) for t in TEMPLATES] + [_condition(e) for e, _ in CONDITIONALS]
print(json.dumps({"out": out, "stats": cache.stats()}))
"""
    paths = [ROOT / "collections", ROOT / "tests", ROOT / "tests" / "collection"]
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(installed.parents[1]),
        "PYTHONPATH": os.pathsep.join(str(p) for p in paths),
    }
    done = subprocess.run(  # this interpreter, a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["out"] == expected
    assert report["stats"]["compiled"] == 0, report["stats"]
    assert report["stats"]["loaded"] == len(expected), report["stats"]


@pytest.mark.parametrize("kind", ["template", "expression"])
def test_an_error_is_raised_every_time_and_never_stored(installed: Path, kind: str) -> None:
    def attempt() -> str:
        with pytest.raises(Exception) as caught:  # Ansible's own error type, whichever
            if kind == "template":
                _render("{{ x | upper }")
            else:
                _condition("n > ")
        return f"{type(caught.value).__name__}: {caught.value}"

    first = attempt()
    assert "syntax" in first.lower() or "unexpected" in first.lower(), first
    assert attempt() == first
    assert _files(installed) == [] and cache.stats()["compiled"] == 0


def test_a_damaged_file_is_compiled_and_written_anew(installed: Path) -> None:
    want = _render(TEMPLATES[0])
    (damaged,) = _files(installed)
    damaged.write_bytes(b"j2 not what Jinja wrote")
    cache._memory.clear()  # as in a new process: nothing in memory, the same folder
    cache._state.update(compiled=0, loaded=0)
    assert _render(TEMPLATES[0]) == want
    assert cache.stats()["compiled"] == 1
    assert damaged.read_bytes().startswith(b"j2") and b"not what" not in damaged.read_bytes()


@pytest.mark.parametrize("kind", ["template", "expression"])
def test_the_debugging_mode_compiles_as_before(
    installed: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    """ansible-core's template debugging writes each compiled source out: not cached."""
    monkeypatch.setattr(AnsibleEnvironment, "_debuggable_template_source", True)
    monkeypatch.setattr(AnsibleEnvironment, "_debuggable_template_source_path", tmp_path / "dbg")
    for _ in range(2):
        if kind == "template":
            assert _render(TEMPLATES[1]) == "1,2,3-6"
        else:
            assert _condition(CONDITIONALS[0][0]) is True
    # Cached, the first render would count one compilation and write one file.
    assert cache.stats()["compiled"] == 0 and _files(installed) == []


def test_a_shared_folder_is_not_used(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    assert cache.private_dir(folder) is False  # others may read (and in a group, write)
    folder.chmod(0o700)
    assert cache.private_dir(folder) is True
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert cache.private_dir(tmp_path / "file") is False


def test_without_a_private_folder_it_still_works_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "llmhost").mkdir(parents=True)
    (xdg / "llmhost" / "ansible-template-code").write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    with _pristine():
        assert cache.install() is True
        assert cache._state["disk"] is None
        assert _render(TEMPLATES[1]) == "1,2,3-6" and _render(TEMPLATES[1]) == "1,2,3-6"
        assert cache.stats()["compiled"] == 1


def test_the_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.ENV, "0")
    with _pristine():
        original = AnsibleEnvironment.compile
        assert cache.install() is False
        assert AnsibleEnvironment.compile is original


@pytest.mark.parametrize("name", STRATEGIES)
def test_importing_a_shim_installs_it(name: str, tmp_path: Path) -> None:
    script = f"""
import importlib, inspect, json
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader([{str(ROOT / "collections")!r}])
from ansible._internal._templating._jinja_bits import AnsibleEnvironment
from ansible_collections.llmhost.core.plugins.plugin_utils import template_code_cache
importlib.import_module({name!r})
compile = AnsibleEnvironment.compile
print(json.dumps([template_code_cache.stats(), inspect.unwrap(compile) is not compile]))
"""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop(cache.ENV, None)
    done = subprocess.run(  # this interpreter, a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    stats, patched = json.loads(done.stdout.splitlines()[-1])
    assert patched is True and stats["compiled"] == 0


@pytest.mark.parametrize("switch", ["1", "0"])
def test_a_playbook_run_fills_it_and_renders_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, switch: str
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(cache.ENV, switch)
    out = tmp_path / "out.txt"
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {"words": ["a", "b"]},
        "tasks": [
            {
                "name": "Render",
                "ansible.builtin.copy": {
                    "content": "{{ words | map('upper') | join('+') }}",
                    "dest": str(out),
                    "mode": "0644",
                },
                "when": "words | length == 2",
            }
        ],
    }
    for _ in range(2):  # the second run loads what the first compiled
        done = run_play(tmp_path, [play])
        assert done.returncode == 0, done.stdout + done.stderr
        assert out.read_text(encoding="utf-8") == "A+B"
    files = _files(tmp_path / "xdg")
    assert (len(files) > 0) is (switch == "1"), files


@pytest.mark.parametrize("first", [True, False])
def test_backslash_escaping_and_overrides_are_part_of_the_key(installed: Path, first: bool) -> None:
    """One text, compiled with and without Ansible's backslash escaping (the template
    module renders files without it) and with other delimiters: three programs, each
    rendered as Ansible renders it, whichever came first into the cache."""
    text = "{{ 'a\\nb' }} [% 'c' %]"
    templar = Templar(loader=DataLoader(), variables=VARS)
    settings = [
        {"escape_backslashes": first},
        {"escape_backslashes": not first},
        {"overrides": {"variable_start_string": "[%", "variable_end_string": "%]"}},
    ]
    got = [templar.template(trust_as_template(text), **kw) for kw in settings]
    want = {True: "a\\nb [% 'c' %]", False: "a\nb [% 'c' %]"}
    assert got[:2] == [want[first], want[not first]]
    assert got[2] == "{{ 'a\\nb' }} c"
    assert cache.stats()["compiled"] == 3
