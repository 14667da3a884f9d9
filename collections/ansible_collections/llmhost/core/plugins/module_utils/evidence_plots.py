"""The index page's plots as PNG bytes (matplotlib's Agg canvas, no pyplot state).

The bytes are a function of the data only (fixed size, no timestamp or software tag in
the PNG), so rendering the same bundle twice gives identical files and a re-run of the
evidence role changes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_SIZE = (8.0, 4.0)
_DPI = 100


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def loss_curve(series: Sequence[tuple[str, Sequence[int], Sequence[float]]], title: str) -> bytes:
    """Loss per step, one line per (label, steps, losses)."""
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    for label, steps, losses in series:
        ax.plot(steps, losses, linewidth=1.2, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(visible=True, alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return _png(fig)


def category_pass_rates(rows: Sequence[tuple[str, int, int, int]], title: str) -> bytes:
    """Pass rate per category, one horizontal bar per (category, cases, passed, expected
    failures), labelled passed/cases (and the expected failures), first category on top."""
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    names = [name for name, *_ in rows]
    rates = [passed / cases if cases else 0.0 for _, cases, passed, _ in rows]
    positions = list(range(len(rows)))
    ax.barh(positions, rates, color="#4c72b0", height=0.6)
    for pos, rate, (_, cases, passed, expected) in zip(positions, rates, rows, strict=True):
        note = f"{passed}/{cases}" + (f" ({expected} expected to fail)" if expected else "")
        ax.text(min(rate, 1.0) + 0.01, pos, note, va="center", fontsize=8)
    ax.set_yticks(positions, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.35)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel("pass rate")
    ax.set_title(title)
    ax.grid(visible=True, axis="x", alpha=0.3)
    return _png(fig)


def latency_histogram(groups: Sequence[tuple[str, Sequence[float]]], title: str) -> bytes:
    """Histogram of latencies in ms, one translucent layer per (label, values)."""
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.add_subplot()
    values = [v for _, group in groups for v in group]
    low, high = min(values), max(values)
    bins = 30 if high > low else 1
    span = (low, high) if high > low else (low - 0.5, high + 0.5)
    for label, group in groups:
        if group:
            ax.hist(group, bins=bins, range=span, alpha=0.6, label=f"{label} (n={len(group)})")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests")
    ax.set_title(title)
    ax.grid(visible=True, alpha=0.3)
    ax.legend()
    return _png(fig)
