"""llmhost.core.host_path_errors: the folders a role may own on a host."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.filter.paths import (
    SYSTEM_DIRS,
    host_path_errors,
    port_clashes,
)

GOOD = [
    "/srv/llmhost/models",
    "/opt/llmhost/vllm",
    "/etc/llmhost",
    "/var/cache/llmhost-vllm",
    "/var/lib/prometheus/metrics2",
    "/var/lib/llmhost/training",
    "/data/models/",
]
BAD = [
    ("", "must be an absolute path"),
    ("relative/models", "must be an absolute path"),
    ("/srv/../etc", "not a normalised path"),
    ("/srv/llmhost/./models", "not a normalised path"),
    ("//srv/models", "not a normalised path"),
    ("/srv//models", "not a normalised path"),
    ("/srv/llm\nhost", "control character"),
    ("/proc/llmhost", "kernel or boot filesystem"),
    ("/sys/fs/cgroup/x", "kernel or boot filesystem"),
    ("/dev/shm/models", "kernel or boot filesystem"),  # noqa: S108 (refused, not used)
    ("/boot/models", "kernel or boot filesystem"),
    ("/etc/", "system directory"),
]


@pytest.mark.parametrize("path", GOOD)
def test_a_folder_of_its_own_is_accepted(path: str) -> None:
    assert host_path_errors({"model_store_root": path}) == []


@pytest.mark.parametrize("path", sorted(SYSTEM_DIRS))
def test_every_system_directory_is_refused_with_the_variable_and_the_fix(path: str) -> None:
    [message] = host_path_errors({"vllm_root": path}, {"vllm_root": "/opt/llmhost/vllm"})
    assert message.startswith(f"vllm_root '{path}' is a system directory")
    assert "Fix: a folder of its own, e.g. vllm_root: /opt/llmhost/vllm." in message


@pytest.mark.parametrize(("path", "reason"), BAD, ids=[b[0] or "empty" for b in BAD])
def test_odd_paths_are_refused(path: str, reason: str) -> None:
    [message] = host_path_errors({"model_store_root": path})
    assert message.startswith("model_store_root")
    assert reason in message


def test_one_message_per_bad_variable_and_none_for_good_ones() -> None:
    errors = host_path_errors({"a_root": "/etc", "b_root": "/srv/b", "c_root": "/usr"})
    assert [e.split(" ")[0] for e in errors] == ["a_root", "c_root"]


def test_non_text_values_are_refused_not_crashed() -> None:
    assert "must be an absolute path" in host_path_errors({"x_dir": None})[0]
    with pytest.raises(AnsibleFilterError, match="mapping"):
        host_path_errors(["/etc"])  # type: ignore[arg-type]


def test_two_listeners_on_one_port_are_named() -> None:
    errors = port_clashes(
        {"vllm_port": 443, "gateway_listen_port": "443", "monitoring_prometheus_port": 9090}
    )
    assert errors == [
        "gateway_listen_port and vllm_port are all 443: one listener per port. "
        "Fix: give each its own port"
    ]


@pytest.mark.parametrize("value", [0, 70000, "http", -1])
def test_a_port_out_of_range_is_named(value: object) -> None:
    assert port_clashes({"vllm_port": value})[0].startswith("vllm_port must be a port number")


def test_roles_not_in_the_play_are_left_out() -> None:
    assert port_clashes({"vllm_port": 8000, "gateway_listen_port": None, "x": ""}) == []
