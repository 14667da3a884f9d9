#!/usr/bin/env python3
"""Draw a run's latency and throughput from monitoring_snapshot.json (control node).

usage: llmhost_monitoring_plot.py monitoring_snapshot.json out.png

Top: time to first token p50/p99, end-to-end p99 and inter-token p99 (seconds).
Bottom: generated and prompt tokens per second, and gateway requests per second.
A series without data is left out and the panel says so. Exit 3 when matplotlib is missing.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

LATENCY = {
    "ttft_p50_s": "TTFT p50",
    "ttft_p99_s": "TTFT p99",
    "e2e_p99_s": "end-to-end p99",
    "itl_p99_s": "inter-token p99",
}
THROUGHPUT = {
    "generation_tokens_per_s": "generated tokens/s",
    "prompt_tokens_per_s": "prompt tokens/s",
}
GATEWAY = "gateway_requests_per_s"


def samples(doc: dict[str, Any], name: str) -> list[tuple[float, float]]:
    """(Unix time, value) of a named series, summed over its label sets; nulls left out."""
    totals: dict[float, float] = {}
    for result in doc.get("series", {}).get(name, {}).get("result", []):
        for t, v in result["values"]:
            if v is not None:
                totals[float(t)] = totals.get(float(t), 0.0) + float(v)
    return sorted(totals.items())


def first_time(doc: dict[str, Any]) -> float:
    """The earliest sample of any drawn series, else the start of the queried range."""
    times = [t for name in (*LATENCY, *THROUGHPUT, GATEWAY) for t, _ in samples(doc, name)]
    return min(times) if times else float(doc["range"]["start"])


def draw(doc: dict[str, Any], out: Path) -> dict[str, int]:
    """Write the PNG; returns the number of points drawn per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = first_time(doc)

    def points(name: str) -> list[tuple[float, float]]:
        return [((t - t0) / 60, v) for t, v in samples(doc, name)]

    drawn: dict[str, int] = {}
    fig, (lat, thr) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for axis, names, unit in ((lat, LATENCY, "seconds"), (thr, THROUGHPUT, "tokens / s")):
        for name, label in names.items():
            data = points(name)
            drawn[name] = len(data)
            if data:
                axis.plot(
                    [p[0] for p in data],
                    [p[1] for p in data],
                    label=label,
                    marker=".",
                    markersize=4,
                )
        axis.set_ylabel(unit)
        axis.grid(visible=True, alpha=0.3)
    gateway = points(GATEWAY)
    drawn[GATEWAY] = len(gateway)
    if gateway:
        requests = thr.twinx()
        requests.plot(
            [p[0] for p in gateway], [p[1] for p in gateway], "k--", label="gateway requests/s"
        )
        requests.set_ylabel("requests / s")
        requests.legend(loc="upper right")
    for axis, names in ((lat, LATENCY), (thr, THROUGHPUT)):
        if any(drawn[name] for name in names):
            axis.legend(loc="upper left")
        else:
            axis.text(
                0.5,
                0.5,
                "no data in this run",
                ha="center",
                va="center",
                transform=axis.transAxes,
                color="gray",
            )
    lat.set_title("Latency")
    thr.set_title("Throughput")
    start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0))
    thr.set_xlabel(f"minutes since {start}")
    fig.suptitle(f"llmhost run {doc.get('run_id', '?')} on {doc.get('host', '?')}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return drawn


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            "error: matplotlib is not installed in this Python (" + sys.executable + ")",
            file=sys.stderr,
        )
        print(
            "fix: pip install matplotlib==3.11.2 into the control venv (make venv)", file=sys.stderr
        )
        return 3
    doc = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    drawn = draw(doc, Path(argv[2]))
    print(json.dumps({"out": argv[2], "points": drawn}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
