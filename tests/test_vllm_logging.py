"""vLLM's JSON logs (vllm_log_format): the filter that puts the request id in its own field
(roles/vllm/files/llmhost_vllm_logging.py), the logging config and the unit's environment
rendered by Ansible from the role's defaults and vars, and that config applied with
logging.config.dictConfig and python-json-logger (the wheel from the vLLM wheelhouse, the
version both lock files pin) to a line shaped like vLLM 0.32's request log."""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from role_runner import run_play

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "vllm"
FILES = ROLE / "files"
LOCKS = sorted(FILES.glob("requirements-*.lock.txt"))
GATEWAY_ID = "4f0c2a9e8b7d6c5b4a3f2e1d0c9b8a71"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, FILES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


filt = _load("llmhost_vllm_logging")


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("vllm.x", logging.INFO, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    ("msg", "vllm_id", "gateway_id"),
    [
        ("Received request %s: params: %s, lora_request: %s.", f"cmpl-{GATEWAY_ID}-0", GATEWAY_ID),
        (
            "Received request %s: params: %s, lora_request: %s.",
            f"chatcmpl-{GATEWAY_ID}",
            GATEWAY_ID,
        ),
        (
            "Generated response %s%s: output: %r, finish_reason: %s",
            f"cmpl-{GATEWAY_ID}-3",
            GATEWAY_ID,
        ),
        ("Aborted request %s.", f"chatcmpl-{GATEWAY_ID}", GATEWAY_ID),
        # A client's own well-formed id that ends like an index keeps it: one index is vLLM's.
        ("Received request %s: params: %s, lora_request: %s.", "cmpl-job-7-0", "job-7"),
        ("Aborted request %s.", "abc123", "abc123"),
    ],
)
def test_the_request_id_gets_its_own_fields(msg: str, vllm_id: str, gateway_id: str) -> None:
    record = _record(msg, vllm_id, "p", None)
    assert filt.RequestIdFilter().filter(record) is True
    assert record.vllm_request_id == vllm_id
    assert record.request_id == gateway_id


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        ("Starting vLLM API server %d on %s", (0, "http://127.0.0.1:8000")),
        ("Loading weights took %s seconds", ("0.5",)),
        ("Received request", ()),
        ("Received request %d", (7,)),
    ],
)
def test_other_lines_pass_untouched(msg: str, args: tuple[object, ...]) -> None:
    record = _record(msg, *args)
    assert filt.RequestIdFilter().filter(record) is True
    assert not hasattr(record, "request_id")
    assert not hasattr(record, "vllm_request_id")


def _render(tmp_path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """logging.json, serve and the release id, rendered with the role's defaults and vars."""
    out = tmp_path / "out"
    out.mkdir()
    extra = {
        "vllm_device": "cuda",
        "vllm_tensor_parallel_size": 1,
        "vllm_model_path": "/srv/llmhost/models/m",
        "vllm_model_revision": "r1",
        # What the role's preflight slurps: the stored model's config.json (vllm_dtype auto
        # is resolved from it).
        "_vllm_model_config": {
            "content": base64.b64encode(b'{"torch_dtype": "bfloat16"}').decode()
        },
        **overrides,
    }
    play = [
        {
            "name": "Render the vllm role's logging",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
            "vars": {"role_path": str(ROLE), "ansible_managed": "test"},
            "tasks": [
                {
                    "name": f"Render {src}",
                    "ansible.builtin.template": {
                        "src": str(ROLE / "templates" / src),
                        "dest": str(out / dest),
                        "mode": "0644",
                    },
                }
                for src, dest in (("logging.json.j2", "logging.json"), ("serve.sh.j2", "serve"))
            ]
            + [
                {
                    "name": "Write the release id",
                    "ansible.builtin.copy": {
                        "content": "{{ _vllm_release_id }}",
                        "dest": str(out / "release_id"),
                        "mode": "0644",
                    },
                }
            ],
        }
    ]
    done = run_play(tmp_path, play, extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return {
        "logging": json.loads((out / "logging.json").read_text("utf-8")),
        "serve": (out / "serve").read_text("utf-8"),
        "release_id": (out / "release_id").read_text("utf-8"),
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return {
        fmt: _render(tmp_path_factory.mktemp(f"vllm-logging-{fmt}"), {"vllm_log_format": fmt})
        for fmt in ("json", "text")
    }


def _exports(serve: str) -> dict[str, str]:
    return dict(re.findall(r"^export ([A-Z_]+)=(.*)$", serve, flags=re.MULTILINE))


@pytest.mark.slow
def test_json_format_points_vllm_at_the_release_logging_config(
    rendered: dict[str, dict[str, Any]],
) -> None:
    exports = _exports(rendered["json"]["serve"])
    assert exports["VLLM_LOGGING_CONFIG_PATH"] == "/opt/llmhost/vllm/current/logging.json"
    assert exports["PYTHONPATH"] == "/opt/llmhost/vllm/bin"  # the filter module
    assert "VLLM_LOGGING_LEVEL" not in exports
    assert "--enable-log-requests" in rendered["json"]["serve"]  # the request lines
    config = rendered["json"]["logging"]
    assert config["version"] == 1 and config["disable_existing_loggers"] is False
    assert config["formatters"]["json"]["()"] == "pythonjsonlogger.json.JsonFormatter"
    assert config["filters"]["request_id"]["()"] == "llmhost_vllm_logging.RequestIdFilter"
    handler = config["handlers"]["json"]
    assert handler["filters"] == ["request_id"] and handler["stream"] == "ext://sys.stdout"
    # vLLM's own loggers, and uvicorn's (vLLM hands it the same file), all go through it.
    for name in ("vllm", "uvicorn", "uvicorn.access"):
        assert config["loggers"][name] == {
            "handlers": ["json"],
            "level": "INFO",
            "propagate": False,
        }
    assert config["root"]["handlers"] == ["json"]


@pytest.mark.slow
def test_text_format_keeps_vllm_s_own_lines(rendered: dict[str, dict[str, Any]]) -> None:
    exports = _exports(rendered["text"]["serve"])
    assert "VLLM_LOGGING_CONFIG_PATH" not in exports and "PYTHONPATH" not in exports
    assert exports["VLLM_LOGGING_LEVEL"] == "INFO"
    # The format is part of the release: switching it is a release switch.
    assert rendered["text"]["release_id"] != rendered["json"]["release_id"]


def _json_logger_wheel() -> Path | None:
    pins = {
        m.group(1)
        for lock in LOCKS
        for m in [re.search(r"^python-json-logger==(\S+)", lock.read_text("utf-8"), re.MULTILINE)]
        if m
    }
    assert len(pins) == 1, f"both lock files pin one python-json-logger: {pins}"
    version = pins.pop()
    wheels = sorted((ROOT / ".cache" / "wheelhouse").glob(f"*/python_json_logger-{version}-*.whl"))
    if wheels:
        return wheels[0]
    # A clean clone has no wheelhouse yet (make lab fills it): fetch the one pinned wheel
    # (pure Python, no dependencies) into a folder of its own, as make lab's pip would.
    dest = ROOT / ".cache" / "wheelhouse" / "tests"
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    subprocess.run(
        [*pip, "--disable-pip-version-check", "-d", str(dest), f"python-json-logger=={version}"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    wheels = sorted(dest.glob(f"python_json_logger-{version}-*.whl"))
    return wheels[0] if wheels else None


@pytest.mark.slow
def test_the_config_writes_one_json_object_a_line_with_the_request_id(
    rendered: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    wheel = _json_logger_wheel()
    if wheel is None:
        pytest.skip("python-json-logger's pinned wheel: not in .cache/wheelhouse, not downloadable")
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(rendered["json"]["logging"]), encoding="utf-8")
    # What vLLM does with VLLM_LOGGING_CONFIG_PATH: json.load + dictConfig; then a request
    # line as vLLM 0.32's request logger writes it, and a line about no request.
    script = textwrap.dedent(
        f"""
        import json, logging, logging.config, sys
        sys.path[:0] = [{str(wheel)!r}, {str(FILES)!r}]
        logging.config.dictConfig(json.load(open({str(config)!r})))
        log = logging.getLogger("vllm.entrypoints.serve.utils.request_logger")
        log.info("Received request %s: params: %s, lora_request: %s.",
                 "cmpl-{GATEWAY_ID}-0", "SamplingParams(n=1)", None)
        logging.getLogger("vllm.engine").info("Loading weights took %s s", "0.5")
        logging.getLogger("vllm.engine").debug("not at INFO")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 2, done.stdout
    request, other = lines
    assert request["request_id"] == GATEWAY_ID
    assert request["vllm_request_id"] == f"cmpl-{GATEWAY_ID}-0"
    assert request["level"] == "INFO" and request["service"] == "vllm"
    assert request["logger"] == "vllm.entrypoints.serve.utils.request_logger"
    assert request["message"].startswith(f"Received request cmpl-{GATEWAY_ID}-0: params:")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$", request["time"])
    assert "request_id" not in other and other["message"] == "Loading weights took 0.5 s"
