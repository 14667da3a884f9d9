"""Filters llmhost.core.host_path_errors and llmhost.core.port_clashes.

Documentation: host_path_errors.yml and port_clashes.yml next to this file.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

# Folders of the operating system and of other software: a role that creates, owns or
# re-permissions its folder must never be pointed at one of these, nor at a parent of one.
SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/etc/ansible",
        "/etc/nginx",
        "/etc/prometheus",
        "/etc/ssh",
        "/etc/sudoers.d",
        "/etc/systemd",
        "/etc/systemd/system",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/lost+found",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",  # noqa: S108 (refused, not used)
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/local/bin",
        "/usr/local/lib",
        "/usr/sbin",
        "/usr/share",
        "/var",
        "/var/backups",
        "/var/cache",
        "/var/lib",
        "/var/lib/dpkg",
        "/var/lib/prometheus",
        "/var/lib/apt",
        "/var/lib/systemd",
        "/var/log",
        "/var/log/nginx",
        "/var/mail",
        "/var/spool",
        "/var/tmp",  # noqa: S108 (refused, not used)
        "/var/www",
    }
)

# Kernel, device and boot filesystems: nothing of a role's lives there.
VIRTUAL_ROOTS = frozenset({"proc", "sys", "dev", "boot"})


def path_error(name: str, value: Any, example: str) -> str | None:
    """Why a host folder is unsafe for a role to own, or None when it is safe."""
    fix = f"Fix: a folder of its own, e.g. {name}: {example}."
    if not isinstance(value, str) or not value:
        return f"{name} must be an absolute path (got {value!r}). {fix}"
    if not value.startswith("/"):
        return f"{name} must be an absolute path (got '{value}'). {fix}"
    if any(c in value for c in "\0\n\r"):
        return f"{name} holds a control character. {fix}"
    normal = posixpath.normpath(value)
    if normal != (value.rstrip("/") or "/") or value.startswith("//"):
        return (
            f"{name} '{value}' is not a normalised path ('..', '.', '//'); write '{normal}'. {fix}"
        )
    if normal in SYSTEM_DIRS:
        return (
            f"{name} '{value}' is a system directory: the role would create, own and "
            f"re-permission it. {fix}"
        )
    if normal.split("/")[1] in VIRTUAL_ROOTS:
        return (
            f"{name} '{value}' lies in a kernel or boot filesystem (/{normal.split('/')[1]}). {fix}"
        )
    return None


def host_path_errors(
    paths: Mapping[str, Any], examples: Mapping[str, str] | None = None
) -> list[str]:
    """One message per unsafe host folder, naming the variable and the fix."""
    if not isinstance(paths, Mapping):
        raise AnsibleFilterError("host_path_errors: expects a mapping of variable name to path")
    examples = examples or {}
    errors = []
    for name in sorted(paths):
        message = path_error(name, paths[name], examples.get(name, "/srv/llmhost/<role>"))
        if message:
            errors.append(message)
    return errors


def port_clashes(ports: Mapping[str, Any]) -> list[str]:
    """One message per port that two listeners of the host would share, or that is out
    of range; variables whose value is None (a role not in the play) are left out."""
    if not isinstance(ports, Mapping):
        raise AnsibleFilterError("port_clashes: expects a mapping of variable name to port")
    owners: dict[int, list[str]] = {}
    errors = []
    for name in sorted(ports):
        value = ports[name]
        if value is None or value == "":
            continue
        try:
            port = int(value)
        except (TypeError, ValueError):
            errors.append(f"{name} must be a port number 1-65535 (got {value!r})")
            continue
        if not 1 <= port <= 65535:
            errors.append(f"{name} must be a port number 1-65535 (got {port})")
            continue
        owners.setdefault(port, []).append(name)
    errors += [
        f"{' and '.join(names)} are all {port}: one listener per port. Fix: give each its own port"
        for port, names in sorted(owners.items())
        if len(names) > 1
    ]
    return errors


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"host_path_errors": host_path_errors, "port_clashes": port_clashes}
