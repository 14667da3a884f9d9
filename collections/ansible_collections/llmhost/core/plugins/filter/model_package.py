"""Filter llmhost.core.model_package_errors: the problems with a model package's pins.

Documentation: model_package_errors.yml next to this file. The rules themselves live in
module_utils/model_package.py, where llmhost.core.model_package applies them again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.model_package import (
    Package,
    input_errors,
)

FIELDS = ("name", "version", "sha256", "member", "member_sha256")


def model_package_errors(value: Any) -> list[str]:
    """One message per problem, each naming the field and the fix; [] when the pins hold."""
    if not isinstance(value, Mapping):
        return [f"must be a dict with {', '.join(FIELDS)} (and optionally dtype), got {value!r}"]
    missing = [f for f in FIELDS if not str(value.get(f) or "")]
    unknown = sorted(set(value) - {*FIELDS, "dtype"})
    errors = [f"{f}: is required" for f in missing] + [
        f"{k}: is not a field (fields: {', '.join(FIELDS)}, dtype)" for k in unknown
    ]
    pkg = Package(
        **{f: str(value.get(f) or "") for f in FIELDS}, dtype=str(value.get("dtype") or "float32")
    )
    errors += [e for e in input_errors(pkg) if e.split(":", 1)[0] not in missing]
    return errors


class FilterModule:
    """llmhost.core model package filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"model_package_errors": model_package_errors}
