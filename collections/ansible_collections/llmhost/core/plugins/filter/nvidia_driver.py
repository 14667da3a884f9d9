"""Filters of the nvidia_driver role: nvidia_driver_plan, nvidia_driver_pick_version,
nvidia_driver_probe_packages, nvidia_driver_reboot_decision and nvidia_driver_verify.
(The role's inputs are checked by meta/argument_specs.yml and tasks/preflight.yml.)

Documentation: one .yml per filter next to this file. The logic lives in
plugin_utils/nvidia_driver.py, where the unit tests call it directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.plugin_utils.nvidia_driver import (
    pick_driver_version,
    plan,
    probe_packages,
    reboot_decision,
    verify,
)


def nvidia_driver_plan(inputs: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(inputs, Mapping) or not isinstance(inputs.get("settings"), Mapping):
        raise AnsibleFilterError("llmhost.core.nvidia_driver_plan: input needs a settings dict")
    try:
        return plan(inputs)
    except (KeyError, ValueError) as exc:
        raise AnsibleFilterError(f"llmhost.core.nvidia_driver_plan: {exc}") from exc


def nvidia_driver_pick_version(
    madison: str,
    anchor: str,
    branch: str | int,
    version: str = "",
    installed: str = "",
    origin: str = "",
) -> dict[str, Any]:
    return pick_driver_version(
        str(madison or ""),
        str(anchor),
        str(branch),
        str(version or ""),
        str(installed or ""),
        str(origin or ""),
    )


def nvidia_driver_probe_packages(
    platform: Mapping[str, Any] | None, source: str, branch: str | int
) -> list[str]:
    return probe_packages(platform or None, str(source), str(branch))


def nvidia_driver_verify(
    gpu: Mapping[str, Any], host: Mapping[str, Any], expected: Mapping[str, Any]
) -> dict[str, Any]:
    return verify(gpu or {}, host or {}, expected or {})


def nvidia_driver_reboot_decision(
    host: Mapping[str, Any],
    pinned: str,
    local: bool = False,
    allow_reboot: bool = False,
    tried_modprobe: bool = False,
) -> dict[str, str]:
    return reboot_decision(
        host or {}, str(pinned), bool(local), bool(allow_reboot), bool(tried_modprobe)
    )


class FilterModule:
    """llmhost.core filters of the nvidia_driver role."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "nvidia_driver_plan": nvidia_driver_plan,
            "nvidia_driver_pick_version": nvidia_driver_pick_version,
            "nvidia_driver_probe_packages": nvidia_driver_probe_packages,
            "nvidia_driver_reboot_decision": nvidia_driver_reboot_decision,
            "nvidia_driver_verify": nvidia_driver_verify,
        }
