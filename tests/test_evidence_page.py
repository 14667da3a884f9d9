"""The evidence index page as a browser shows it: headless Chromium (Debian's `chromium`
package on the control node) loads index.html from the rendered fixture bundle; every
image must load with its real size, and the screenshot must show the plots."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "evidence_fixture"

from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import (  # noqa: E402
    write_if_changed,
)
from ansible_collections.llmhost.core.plugins.modules.evidence_index import render  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium: apt-get install chromium (make test bootstraps it)"
)
# Appended to a copy of the page: reports every image's natural size once loaded.
PROBE = """<script>
window.addEventListener("load", () => {
  const seen = Array.from(document.images).map(
    (i) => ({src: i.getAttribute("src"), width: i.naturalWidth, height: i.naturalHeight}));
  const out = document.createElement("pre");
  out.id = "llmhost-probe";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
});
</script>
</body>"""
LOSS_BLUE = (31, 119, 180)  # matplotlib's first colour, the loss curve


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _rendered(tmp_path: Path, name: str, drop: list[str]) -> Path:
    root = Path(shutil.copytree(FIXTURE, tmp_path / name))
    for rel in drop:
        (root / rel).unlink()
    outputs, _, _ = render(root, name, "lab")
    for rel, data in outputs.items():
        if data is not None:
            write_if_changed(root / rel, data)
    return root


def _probe(tmp_path: Path, root: Path) -> tuple[list[dict[str, object]], str]:
    page = (root / "index.html").read_text(encoding="utf-8").replace("</body>", PROBE)
    probe = root / "probe.html"
    probe.write_text(page, encoding="utf-8")
    out = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    match = re.search(r'<pre id="llmhost-probe">(.*?)</pre>', out.stdout, re.S)
    assert match, f"the page did not finish loading: {out.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1))), out.stdout


def test_every_image_of_the_page_loads(tmp_path: Path) -> None:
    root = _rendered(tmp_path, "full", [])
    images, dom = _probe(tmp_path, root)
    assert images == [
        {"src": "plots/loss_curve.png", "width": 800, "height": 400},
        {"src": "plots/latency.png", "width": 800, "height": 400},
    ]
    assert dom.count("<table>") == 5  # summary, percentiles, evaluation, comparison, files


def test_screenshot_shows_the_plots(tmp_path: Path) -> None:
    root = _rendered(tmp_path, "full", [])
    shot = tmp_path / "page.png"
    out = _chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1200,1800", (root / "index.html").as_uri()
    )
    assert shot.is_file(), out.stderr[-2000:]
    with Image.open(shot) as image:
        pixels = list(image.convert("RGB").get_flattened_data())
    white = sum(1 for p in pixels if p == (255, 255, 255))
    curve = sum(
        1 for p in pixels if all(abs(a - b) <= 12 for a, b in zip(p, LOSS_BLUE, strict=True))
    )
    assert white < 0.95 * len(pixels), "the page is blank"
    assert len(set(pixels)) > 100
    assert curve > 500, f"the loss curve is not on the page ({curve} blue pixels)"


def test_page_without_plots_says_not_in_this_run(tmp_path: Path) -> None:
    drop = ["eval_results.csv", "load_test.json", "openllm_gpu_training_run/training_log.csv"]
    root = _rendered(tmp_path, "partial", drop)
    images, dom = _probe(tmp_path, root)
    assert images == []
    assert dom.count("Not in this run") >= 3
