"""The AnsibleModule boilerplate every llmhost.core module shares, in one place.

A module declares its argument_spec and a handler: a plain function of a Request (the
validated params, check mode, and the AnsibleModule for the few handlers that need one of
its helpers: get_bin_path, atomic_move, fetch_url). The handler returns the result dict
(exit_json's keyword arguments) or raises ModuleFailure (fail_json's). run_module() builds the
module, calls the handler and exits; handlers stay testable without Ansible by calling them
with a Request of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule


class ModuleFailure(Exception):
    """The task fails with msg; result holds fail_json's other keys (rc, cmd, errors...)."""

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result


@dataclass(frozen=True)
class Request:
    params: dict[str, Any]
    check_mode: bool = False
    module: Any = field(default=None, repr=False)  # the AnsibleModule, under run_module()


Handler = Callable[[Request], Mapping[str, Any]]


def run_module(
    argument_spec: dict[str, Any],
    handler: Handler,
    *,
    supports_check_mode: bool = True,
    errors: tuple[type[Exception], ...] = (),
    **options: Any,
) -> None:
    """Build the AnsibleModule, call handler, exit_json its result.

    ModuleFailure becomes fail_json(msg, **result); an exception of a type in errors (a
    domain error whose text is already the message) becomes fail_json(msg=str(exc)).
    options go to AnsibleModule as they are (mutually_exclusive, required_one_of...).
    """
    module = AnsibleModule(
        argument_spec=argument_spec, supports_check_mode=supports_check_mode, **options
    )
    try:
        result = handler(Request(module.params, module.check_mode, module))
    except ModuleFailure as failure:
        module.fail_json(msg=failure.msg, **failure.result)
    except errors as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)
