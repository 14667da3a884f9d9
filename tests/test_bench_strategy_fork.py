"""scripts/bench_strategy_fork.py: its play and inventory, the side-by-side summary, and one
small real run each way (two local hosts, one task)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from loading import load_module

ROOT = Path(__file__).resolve().parents[1]
bench = load_module("bench_strategy_fork", ROOT / "scripts" / "bench_strategy_fork.py")


def test_play_has_hosts_times_tasks_workers(tmp_path: Path) -> None:
    inventory, play = bench.write_play(tmp_path, hosts=3, tasks=4)
    hosts = yaml.safe_load(inventory.read_text(encoding="utf-8"))["all"]["hosts"]
    assert len(hosts) == 3
    assert {h["ansible_connection"] for h in hosts.values()} == {"local"}
    (only,) = yaml.safe_load(play.read_text(encoding="utf-8"))
    assert only["gather_facts"] is False and len(only["tasks"]) == 4
    # Each task templates: a condition, a task variable, two assertions.
    assert all(t["when"] and "{{" in t["vars"]["bench_label"] for t in only["tasks"])


def test_summary_means_and_ratios() -> None:
    runs = [
        {"on": True, "cpu_s": 9.0, "wall_s": 5.0},
        {"on": False, "cpu_s": 10.0, "wall_s": 5.0},
        {"on": True, "cpu_s": 7.0, "wall_s": 3.0},
        {"on": False, "cpu_s": 10.0, "wall_s": 5.0},
    ]
    summary = bench.summary(runs)
    assert summary["on"] == {"cpu_s": 8.0, "wall_s": 4.0}
    assert summary["cpu_ratio"] == 0.8 and summary["wall_ratio"] == 0.8


def test_bad_sizes_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--hosts", "0"])
    assert "--hosts, --tasks and --rounds must be at least 1" in capsys.readouterr().err


def test_an_unknown_switch_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--switch", "turbo"])
    assert "invalid choice: 'turbo'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("switch", "variable"),
    [
        ("gc-freeze", "LLMHOST_STRATEGY_GC_FREEZE"),
        ("template-cache", "LLMHOST_TEMPLATE_CODE_CACHE"),
        ("jinja-preload", "LLMHOST_JINJA_PLUGIN_PRELOAD"),
    ],
)
def test_one_small_round_each_way(
    capsys: pytest.CaptureFixture[str], switch: str, variable: str
) -> None:
    args = ["--switch", switch, "--hosts", "2", "--tasks", "1", "--rounds", "1"]
    assert bench.main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["workers_per_run"] == 2 and report["variable"] == variable
    assert [r["on"] for r in report["runs"]] == [True, False]
    assert all(r["cpu_s"] > 0 and r["wall_s"] > 0 for r in report["runs"])
    assert set(report["summary"]) == {"on", "off", "cpu_ratio", "wall_ratio"}
