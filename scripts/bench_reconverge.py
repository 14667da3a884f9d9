"""Re-converge of an unchanged host: Ansible's linear strategy vs Mitogen's, same run.

Runs `ansible-playbook playbooks/site.yml` (provision and serve, no evaluation) against
an inventory whose host is already converged, alternating the two strategies round by
round so drift on a noisy machine hits both sides alike:

- old: ANSIBLE_STRATEGY=linear (a new Python over SSH for every task, pipelining on)
- new: ansible.cfg's llmhost.core.mitogen_linear (one interpreter per host for the run)

With --old-checkout PATH the old side is instead another checkout of this repository
(e.g. `git worktree add /tmp/base <commit>`; give it the inventory's git-ignored vault),
run with its own ansible.cfg, playbooks and inventory and the same strategy: old code vs
new code, side by side on the same host.

Each round writes its evidence into a throwaway folder (never evidence/). Prints one JSON
document: wall seconds per round, the median of each side, old/new ratio, and the recap's
changed count per host (the goal: 0 on an unchanged host; every evidence file goes to the
control node's bundle, so it is not a change on the host).

Needs a converged host, e.g. `make lab-up && make train INVENTORY=inventories/lab &&
make deploy INVENTORY=inventories/lab`; then
`.venv/bin/python scripts/bench_reconverge.py -i inventories/lab --rounds 3`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
SIDES = {"old": {"ANSIBLE_STRATEGY": "linear"}, "new": {}}


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP counts per host (localhost, the control node, left out)."""
    return {
        m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
        for m in RECAP.finditer(stdout)
        if m[1] != "localhost"
    }


def converge(
    inventory: Path, side: str, vault: Path | None, old_checkout: Path | None = None
) -> dict:
    root = old_checkout if side == "old" and old_checkout is not None else ROOT
    strategy = {} if old_checkout is not None else SIDES[side]
    with tempfile.TemporaryDirectory(prefix="llmhost-bench-") as bundle:
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
            "LLMHOST_ROOT": str(root),
            "LLMHOST_EVIDENCE_DIR": bundle,
            "ANSIBLE_CALLBACKS_ENABLED": "llmhost.core.evidence_ledger",
            **strategy,
        }
        if vault is not None:
            env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(vault)
        inventory = root / inventory.resolve().relative_to(ROOT) if root != ROOT else inventory
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory)]
        started = time.monotonic()
        done = subprocess.run(  # noqa: S603 (our own ansible-playbook, argv list)
            [*cmd, str(root / "playbooks" / "site.yml")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - started
    hosts = recap(done.stdout)
    if done.returncode != 0 or not hosts:
        tail = "\n".join(done.stdout.splitlines()[-30:])
        message = f"{side} round failed (rc {done.returncode}):\n{tail}\n{done.stderr[-2000:]}"
        raise SystemExit(message)
    return {"side": side, "wall_s": round(wall, 2), "hosts": hosts}


def changed(rounds: list[dict], side: str) -> list[int]:
    """The distinct recap 'changed' counts of one side's hosts over its rounds."""
    return sorted({h["changed"] for r in rounds if r["side"] == side for h in r["hosts"].values()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", type=Path, default=ROOT / "inventories" / "lab")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side (alternated)")
    parser.add_argument("--vault-password-file", type=Path, default=None)
    parser.add_argument(
        "--old-checkout",
        type=Path,
        default=None,
        help="old side: this checkout's code with the same strategy (old code vs new code)",
    )
    args = parser.parse_args(argv)
    vault = args.vault_password_file
    if vault is None:
        default = ROOT / ".cache" / "vault" / f"{args.inventory.resolve().name}.pass"
        vault = default if default.exists() else None
    rounds = []
    for n in range(args.rounds):
        for side in ("old", "new") if n % 2 == 0 else ("new", "old"):
            result = converge(args.inventory, side, vault, args.old_checkout)
            line = f"[bench] round {n + 1} {side}: {result['wall_s']} s {result['hosts']}"
            print(line, file=sys.stderr)
            rounds.append(result)
    median = {
        side: statistics.median(r["wall_s"] for r in rounds if r["side"] == side) for side in SIDES
    }
    report = {
        "benchmark": "site.yml re-converge of an unchanged host",
        "inventory": str(args.inventory),
        "old": str(args.old_checkout) if args.old_checkout else "ANSIBLE_STRATEGY=linear",
        "new": "this checkout, ansible.cfg's strategy",
        "rounds": rounds,
        "median_wall_s": median,
        "old_over_new": round(median["old"] / median["new"], 2),
        "goal_s": 20,
        "changed_on_hosts": {side: changed(rounds, side) for side in SIDES},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
