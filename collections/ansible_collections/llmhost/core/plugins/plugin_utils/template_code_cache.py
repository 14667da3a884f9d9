"""Compile each Jinja template once per control node, not once per host and task.

ansible-core 2.19 compiles a template from its text every time it renders one: Jinja's
lexer, parser and code generator, then Python's ``compile()`` (Environment.compile). Each
task of each host runs in a worker process forked for that task, so nothing a worker
compiles outlives it: the same ``when:``, ``msg:`` and role variable templates are compiled
again for every host, every task, every run (an open upstream report, ansible/ansible#86881,
measures the 2.19 templating slowdown). In our preflight refusal test (one play, about 90
hosts, each templating the role's rules) compiling was a third of the CPU.

Measured on our 2-CPU build machine: ``scripts/bench_strategy_fork.py --switch
template-cache`` (50 local hosts, 10 tasks each with a condition, a templated variable and
two assertions; four runs each way, alternated): 18.3 vs 20.4 CPU-seconds (ratio 0.895;
every run with the cache below every run without); with a third assertion using
``llmhost.core.refused`` and the plugin preload on both sides, 14.1 vs 16.0 (0.881).
The preflight refusal test (100 bad inputs, one ansible-playbook): 65 and 69 CPU-seconds
against 87 and 90 (-22 to -25 %).

The compiled result, a Python code object, depends only on the template's text and on the
environment's compile settings (delimiters, whitespace handling, the code generator, the
backslash escaping of Ansible's compile context, Ansible's embedded-template switch); Jinja
binds it to an environment afterwards (``Template.from_code``), so every render still gets
the environment, filters, loader and variables of its own task. This module keeps the code
objects:

- in the process, keyed by settings and text;
- on disk, with Jinja's own ``FileSystemBytecodeCache`` (marshal, atomic writes, a header
  naming the Python version, the source's checksum checked on load), so that the next
  worker, the next host and the next run load instead of compile. The folder is
  ``$XDG_CACHE_HOME/llmhost/ansible-template-code/<versions>`` (``~/.cache`` by default),
  private to the user (0700); a folder that is not (another owner, other permissions) is
  not used, and only the in-process layer remains.

What goes through the cache: a template compiled from its text (``from_string``: no name,
no file name) and an expression (``compile_expression``: a conditional, an assert's
``that``; Jinja's own steps, the code of its one-line template cached). Named templates
(``include``/``import`` through the loader), ansible-core's template-debugging mode and an
environment with a callable ``autoescape`` compile as before. A template that fails to
compile is never stored: the error is raised as before, every time.

Both strategy shims install it (``install()``); ``LLMHOST_TEMPLATE_CODE_CACHE=0`` turns
it off for one run (the benchmark's side-by-side figure). Why not a library: neither
ansible-core nor Jinja caches ``from_string`` compilations; Jinja's bytecode cache, used
here for storage, is only consulted for templates loaded through a loader.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "LLMHOST_TEMPLATE_CODE_CACHE"  # "0": compile every time (the benchmark's switch)
SCHEMA = "llmhost-template-code/1"
_MEMORY_LIMIT = 8192  # code objects kept per process; past it, the oldest half is dropped

_lock = threading.Lock()
_memory: dict[tuple[Any, ...], Any] = {}
_state: dict[str, Any] = {"installed": False, "disk": None, "compiled": 0, "loaded": 0}


def cache_dir(versions: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmhost" / "ansible-template-code" / versions


def private_dir(path: Path) -> bool:
    """Create PATH (0700) when missing; True when it is a folder of ours that nobody else can
    read or write (a cache others could write to would run their code in our workers)."""
    try:
        path.mkdir(mode=stat.S_IRWXU, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def _bucket(disk: Any, env: Any, key_settings: tuple[Any, ...], text: str) -> Any:
    """The disk's bucket for TEXT, its code loaded when the file holds this very text's;
    None when TEXT cannot be stored (not encodable: it is compiled, in memory only)."""
    from jinja2.bccache import Bucket

    try:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    except UnicodeEncodeError:
        return None
    key = disk.get_cache_key(f"{key_settings!r}|{digest}")
    bucket = Bucket(env, key, disk.get_source_checksum(text))
    try:
        disk.load_bytecode(bucket)  # no file, or another Python's or text's: no code
    except Exception:  # a damaged file, whatever the damage: compiled and written anew
        bucket.reset()
    return bucket


def _code(
    env: Any, key_settings: tuple[Any, ...], text: str, compile_now: Callable[[], Any]
) -> Any:
    """The code object for TEXT under KEY_SETTINGS: from this process, else from the disk,
    else COMPILE_NOW() (its errors raised as they are; nothing stored then)."""
    key = (key_settings, text)
    code = _memory.get(key)
    if code is not None:
        return code
    disk = _state["disk"]
    bucket = _bucket(disk, env, key_settings, text) if disk is not None else None
    code = bucket.code if bucket is not None else None
    if code is None:
        code = compile_now()
        _state["compiled"] += 1
        if bucket is not None:
            bucket.code = code
            # A full or read-only disk: the process still keeps it in memory.
            with contextlib.suppress(OSError, ValueError):
                disk.set_bucket(bucket)
    else:
        _state["loaded"] += 1
    with _lock:
        if len(_memory) >= _MEMORY_LIMIT:
            for old in list(_memory)[: _MEMORY_LIMIT // 2]:
                _memory.pop(old, None)
        _memory[key] = code
    return code


def stats() -> dict[str, int]:
    """How many templates this process compiled and how many it loaded from the disk."""
    return {"compiled": _state["compiled"], "loaded": _state["loaded"], "in_memory": len(_memory)}


def install() -> bool:
    """Patch ansible-core's Jinja environment (once per process); False when it is off or
    this ansible-core lacks what the key needs (then templates compile as before)."""
    if _state["installed"]:
        return True
    if os.environ.get(ENV, "1") == "0":
        return False
    try:
        import ansible.release
        import jinja2
        from ansible._internal._templating import _jinja_bits, _jinja_common
        from jinja2 import nodes
        from jinja2.bccache import FileSystemBytecodeCache
        from jinja2.environment import TemplateExpression
        from jinja2.exceptions import TemplateSyntaxError
        from jinja2.parser import Parser
    except ImportError:
        return False
    env_class = _jinja_bits.AnsibleEnvironment
    fields = getattr(_jinja_bits, "_TEMPLATE_OVERRIDE_FIELD_NAMES", None)
    compile_context = getattr(_jinja_bits, "_TemplateCompileContext", None)
    debug_context = getattr(_jinja_bits, "_CompileStateSmugglingCtx", None)
    config = getattr(_jinja_common, "_TemplateConfig", None)
    if fields is None or compile_context is None or debug_context is None or config is None:
        return False
    versions = "-".join(
        (
            f"py{sys.version_info[0]}.{sys.version_info[1]}",
            f"core{ansible.release.__version__}",
            f"jinja{jinja2.__version__}",
        )
    )
    folder = cache_dir(versions)
    private = private_dir(folder)
    _state["disk"] = FileSystemBytecodeCache(str(folder), "%s.code") if private else None
    original_compile = env_class.compile
    original_expression = env_class.compile_expression

    def settings(env: Any, kind: str) -> tuple[Any, ...] | None:
        """What the generated code depends on besides the text; None: do not cache."""
        if (
            not isinstance(env.autoescape, bool)
            or getattr(env, "_debuggable_template_source", False)  # it writes each source out
            or debug_context.current(optional=True)
        ):
            return None
        context = compile_context.current(optional=True)
        return (
            SCHEMA,
            kind,
            versions,
            f"{type(env).__module__}.{type(env).__qualname__}",
            f"{env.code_generator_class.__module__}.{env.code_generator_class.__qualname__}",
            tuple((name, getattr(env, name)) for name in fields),
            env.optimized,
            env.autoescape,
            env.is_async,
            getattr(env.finalize, "__qualname__", repr(env.finalize)),
            tuple(sorted(env.extensions)),
            bool(context and context.escape_backslashes),
            bool(config.allow_embedded_templates),
        )

    def compile(
        self: Any,
        source: Any,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        """Environment.compile: a template's text (from_string) through the cache."""
        plain = isinstance(source, str) and name is None and filename is None
        key_settings = settings(self, "template") if plain and not raw and not defer_init else None
        if key_settings is None:
            return original_compile(self, source, name, filename, raw, defer_init)
        return _code(
            self,
            key_settings,
            str.__str__(source),  # a plain str: Ansible's tagged strings carry their origin
            lambda: original_compile(self, source, name, filename, raw, defer_init),
        )

    def compile_expression(self: Any, source: Any, undefined_to_none: bool = True) -> Any:
        """Environment.compile_expression (a conditional, a `that`): Jinja's own steps,
        the code of its one-line template through the cache."""
        key_settings = settings(self, "expression") if isinstance(source, str) else None
        if key_settings is None:
            return original_expression(self, source, undefined_to_none)

        def compile_now() -> Any:
            parser = Parser(self, source, state="variable")
            expr = parser.parse_expression()
            if not parser.stream.eos:
                raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
            expr.set_environment(self)
            body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
            return original_compile(self, nodes.Template(body, lineno=1))

        try:
            code = _code(self, key_settings, str.__str__(source), compile_now)
        except TemplateSyntaxError:
            # Jinja's own path raises the error the way Ansible expects (handle_exception).
            return original_expression(self, source, undefined_to_none)
        template = self.template_class.from_code(self, code, self.make_globals(None), None)
        return TemplateExpression(template, undefined_to_none)

    compile.__wrapped__ = original_compile  # type: ignore[attr-defined]
    compile_expression.__wrapped__ = original_expression  # type: ignore[attr-defined]
    env_class.compile = compile
    env_class.compile_expression = compile_expression
    _state["installed"] = True
    return True
