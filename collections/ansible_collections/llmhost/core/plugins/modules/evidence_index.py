#!/usr/bin/python
"""llmhost.core.evidence_index: the evidence bundle's index page (Markdown + HTML) and plots."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: evidence_index
short_description: Render the index page and plots of an llmhost evidence bundle
version_added: 0.1.0
description:
  - Reads the bundle O(path) and writes C(index.md) and a static C(index.html) (no script,
    no remote resource) that link every file of the bundle, with a summary, the required
    evidence from C(open_llm_runbook.json), the evaluation's pass/fail table and the
    comparison with the previous run (C(eval_comparison.json)).
  - Plots, as PNG under C(plots/), with matplotlib on the control node
    (C(plots/loss_curve.png) from C(openllm_gpu_training_run/training_log.csv),
    C(plots/latency.png) from the latencies in C(eval_results.csv) and C(load_test.json),
    C(plots/eval_categories.png) from the per-category counts in C(eval_summary.json) when
    the cases have categories).
    What the bundle does not hold is shown as "Not in this run", and a plot whose data
    is gone is removed.
  - Writes a file only when its bytes change (the plots are deterministic), so a re-run
    reports RV(changed=false).
requirements:
  - matplotlib (exact pin in the repository's requirements.txt) on the control node
author:
  - llmhost project
options:
  path:
    description: The bundle folder on the control node.
    type: path
    required: true
  run_id:
    description: The run id shown on the page.
    type: str
    required: true
  inventory:
    description:
      - The inventory name shown on the page (the bundle is C(evidence/<inventory>/<run_id>)).
    type: str
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Render the index page and the plots
  llmhost.core.evidence_index:
    path: "{{ evidence_dir }}"
    run_id: "{{ evidence_run_id }}"
    inventory: "{{ evidence_inventory_name }}"
  delegate_to: localhost
"""

RETURN = r"""
written:
  description: Files (relative to the bundle) that were written or would be in check mode.
  returned: always
  type: list
  elements: str
removed:
  description: Plots removed because their data is no longer in the bundle.
  returned: always
  type: list
  elements: str
plots:
  description: Plot paths by name; null when the run has no data for it.
  returned: always
  type: dict
  sample: {loss_curve: plots/loss_curve.png, latency: null, eval_categories: null}
eval:
  description: Count of evaluation cases, passed and failed; null without eval_results.csv.
  returned: always
  type: dict
files:
  description: Number of files the page links.
  returned: always
  type: int
"""

from pathlib import Path
from typing import Any

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import (
    MANIFEST_NAME,
    differs,
    scan,
    write_if_changed,
)
from ansible_collections.llmhost.core.plugins.module_utils.evidence_report import (
    CATEGORIES_PNG,
    LATENCY_PNG,
    LOSS_PNG,
    Bundle,
    layout,
    load_bundle,
    render_html,
    render_markdown,
)
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)

try:
    from ansible_collections.llmhost.core.plugins.module_utils import evidence_plots
except ImportError as err:  # matplotlib missing
    evidence_plots = None
    PLOTS_ERROR: ImportError | None = err
else:
    PLOTS_ERROR = None


def _run_kind(bundle: Bundle) -> str:
    kind = bundle.root / "openllm_gpu_training_run" / "RUN_KIND"
    return kind.read_text(encoding="utf-8").strip() if kind.is_file() else ""


def render_plots(bundle: Bundle) -> dict[str, bytes | None]:
    """{relative path: PNG bytes, or None when the bundle has no data for it}."""
    if evidence_plots is None:
        raise RuntimeError("matplotlib is not installed") from PLOTS_ERROR
    loss = None
    if bundle.loss:
        kind = _run_kind(bundle)
        title = f"Training loss ({kind})" if kind else "Training loss"
        loss = evidence_plots.loss_curve([(s.label, s.steps, s.losses) for s in bundle.loss], title)
    groups = []
    if bundle.evals:
        groups.append(
            ("eval cases", [r.latency_ms for r in bundle.evals if r.latency_ms is not None])
        )
    if bundle.load and bundle.load.latencies_ms:
        groups.append(("load test", bundle.load.latencies_ms))
    groups = [(label, values) for label, values in groups if values]
    latency = evidence_plots.latency_histogram(groups, "Request latency") if groups else None
    categories = None
    if bundle.evals is not None and bundle.categories:
        stats = [(c.name, c.cases, c.passed, c.expected_failures) for c in bundle.categories]
        categories = evidence_plots.category_pass_rates(stats, "Evaluation pass rate per category")
    return {LOSS_PNG: loss, LATENCY_PNG: latency, CATEGORIES_PNG: categories}


def render(
    root: Path, run_id: str, inventory: str
) -> tuple[dict[str, bytes | None], Bundle, list[str]]:
    """Every output of the page ({relative path: bytes, or None for a plot to remove}),
    the bundle as read, and the files the page links."""
    files, special = scan(root)
    files = sorted(set(files) | set(special))
    bundle = load_bundle(root, run_id, inventory, files)
    plots = render_plots(bundle)
    bundle.files = [f for f in files if plots.get(f, b"") is not None]
    made = [rel for rel, data in plots.items() if data is not None]
    outputs = ["index.md", "index.html", MANIFEST_NAME, *made]
    blocks = layout(bundle, outputs)
    title = f"Evidence bundle {run_id} ({inventory})"
    pages: dict[str, bytes | None] = {
        "index.md": render_markdown(blocks).encode("utf-8"),
        "index.html": render_html(blocks, title).encode("utf-8"),
    }
    linked = sorted(set(bundle.files) | set(outputs))
    return {**plots, **pages}, bundle, linked


def handle(request: Request) -> dict[str, Any]:
    if PLOTS_ERROR is not None:
        raise ModuleFailure(missing_required_lib("matplotlib"), exception=str(PLOTS_ERROR))
    root = Path(request.params["path"])
    if not root.is_dir():
        raise ModuleFailure(f"path {root} is not a folder; point it at the evidence bundle")
    outputs, bundle, linked = render(root, request.params["run_id"], request.params["inventory"])
    written = sorted(
        rel for rel, data in outputs.items() if data is not None and differs(root / rel, data)
    )
    removed = sorted(rel for rel, data in outputs.items() if data is None and (root / rel).exists())
    if not request.check_mode:
        for rel in written:
            write_if_changed(root / rel, outputs[rel] or b"", 0o644)
        for rel in removed:
            (root / rel).unlink()
    return {
        "changed": bool(written or removed),
        "written": written,
        "removed": removed,
        "plots": {
            "loss_curve": LOSS_PNG if outputs[LOSS_PNG] else None,
            "latency": LATENCY_PNG if outputs[LATENCY_PNG] else None,
            "eval_categories": CATEGORIES_PNG if outputs[CATEGORIES_PNG] else None,
        },
        "eval": None
        if bundle.evals is None
        else {
            "total": len(bundle.evals),
            "passed": sum(r.passed for r in bundle.evals),
            "failed": sum(not r.passed for r in bundle.evals),
        },
        "files": len(linked),
    }


def main() -> None:
    run_module(
        {
            "path": {"type": "path", "required": True},
            "run_id": {"type": "str", "required": True},
            "inventory": {"type": "str", "required": True},
        },
        handle,
    )


if __name__ == "__main__":
    main()
