"""Filters llmhost.core.hard_stop_errors and llmhost.core.hard_stop_epoch: the hard stop's
one time format (plugin_utils/hard_stop.py) for the roles' tasks and templates.

Documentation: the .yml files of the same names next to this file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.plugin_utils import hard_stop


def hard_stop_errors(value: object, var: str) -> list[str]:
    """[the refusal naming var] for a value in another format; [] when accepted or empty."""
    return hard_stop.errors(value, var)


def hard_stop_epoch(value: object, var: str = "hard_stop_time") -> int:
    """The Unix time of an accepted hard-stop time; an error for anything else, empty too."""
    try:
        moment = hard_stop.parse(value, var)
    except hard_stop.HardStopError as error:
        raise AnsibleFilterError(f"llmhost.core.hard_stop_epoch: {error}") from None
    if moment is None:
        raise AnsibleFilterError(f"llmhost.core.hard_stop_epoch: {var} is empty")
    return int(moment.timestamp())


class FilterModule:
    """llmhost.core hard-stop filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"hard_stop_errors": hard_stop_errors, "hard_stop_epoch": hard_stop_epoch}
