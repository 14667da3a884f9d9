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
