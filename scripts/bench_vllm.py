"""Benchmarks of the vllm role on the lab host (CPU route). Prints figures; asserts nothing.

python scripts/bench_vllm.py throughput [--rounds 2] [--concurrency 8 32] [--tokens 64]
    Our systemd unit (flags and CPU tuning from the role) against a plain `vllm serve`
    with vLLM's defaults, same venv, model and host, one server at a time, alternating
    ours/plain each round so drift hits both. Traffic stays on 127.0.0.1 inside the
    container (docker exec).
python scripts/bench_vllm.py reconverge --run-id RUN
    Re-runs playbooks/lab.yml with the run id of a finished lab run: wall time and
    the changed count of an unchanged host (goal: changed=0 in under 20 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOAD = ROOT / "scripts" / "bench_vllm_load.py"
PLAIN_PORT = 8001


def sh(container: str, cmd: str, check: bool = True, env: list[str] | None = None) -> str:
    args = ["docker", "exec", *[f"-e{e}" for e in env or []], container, "sh", "-c", cmd]
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise SystemExit(f"error: {cmd!r} failed in {container}: {out.stderr.strip()[-500:]}")
    return out.stdout


def wait_ready(container: str, port: int, unit: str, timeout: float = 600) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if sh(container, f"systemctl is-failed {unit}", check=False).strip() == "failed":
            log = sh(container, f"journalctl -u {unit} -n 20 --no-pager -o cat", check=False)
            raise SystemExit(f"error: {unit} failed to start:\n{log}")
        code = sh(
            container,
            f"curl -s -o /dev/null -w '%{{http_code}}' 127.0.0.1:{port}/health",
            check=False,
        )
        if code.strip() == "200":
            return time.monotonic() - start
        time.sleep(2)
    raise SystemExit(f"error: nothing ready on 127.0.0.1:{port} after {timeout:.0f} s")


def load(
    container: str, venv: str, port: int, model: str, conc: int, tokens: int, with_key: bool
) -> dict:
    cmd = (
        f"{venv}/bin/python /root/bench_vllm_load.py --url http://127.0.0.1:{port} "
        f"--model {shlex.quote(model)} --concurrency {conc} --requests {conc * 3} "
        f"--tokens {tokens}"
    )
    if with_key:
        # The key from the unit's 0600 environment file, by name: never on a command line.
        cmd = "set -a; . /etc/llmhost/vllm.env; set +a; " + cmd + " --key-env VLLM_API_KEY"
    return json.loads(sh(container, cmd).strip().splitlines()[-1])


def throughput(a: argparse.Namespace) -> None:
    c = a.container
    release = json.loads(sh(c, "cat /opt/llmhost/vllm/current/release.json"))
    venv, model = release["venv"], release["served_model_name"]
    subprocess.run(["docker", "cp", str(LOAD), f"{c}:/root/bench_vllm_load.py"], check=True)
    plain_cmd = (
        f"systemd-run --unit=bench-plain-vllm --uid=vllm --gid=llmhost "
        f"-E HOME=/var/cache/llmhost-vllm -E HF_HUB_OFFLINE=1 -E VLLM_NO_USAGE_STATS=1 "
        # The one setting a plain server needs to start here: by default vLLM's CPU backend
        # wants 92% of a NUMA node for its KV cache and refuses to start on a lab host.
        f"-E VLLM_CPU_KVCACHE_SPACE=1 "
        f"{venv}/bin/python /opt/llmhost/vllm/bin/llmhost_vllm_launcher.py serve "
        f"{release['model_path']} --served-model-name {model} --port {PLAIN_PORT}"
    )
    print(f"ours:  {' '.join(release['args'])}\n       env {release['environment']}")
    print(f"plain: {plain_cmd}\n")
    results: dict[str, dict[int, list[dict]]] = {"ours": {}, "plain": {}}
    sh(c, "systemctl stop vllm-liveness.timer", check=False)
    try:
        for rnd in range(a.rounds):
            for who in ("ours", "plain"):
                if who == "ours":
                    sh(c, "systemctl start vllm")
                    ready = wait_ready(c, 8000, "vllm")
                    port = 8000
                else:
                    sh(c, "systemctl stop vllm")
                    sh(c, plain_cmd)
                    ready = wait_ready(c, PLAIN_PORT, "bench-plain-vllm")
                    port = PLAIN_PORT
                for conc in a.concurrency:
                    r = load(c, venv, port, model, conc, a.tokens, with_key=who == "ours")
                    r["ready_s"] = round(ready, 1)
                    results[who].setdefault(conc, []).append(r)
                    print(
                        f"round {rnd + 1} {who:5s} c={conc:<3d} {r['output_tok_per_s']:8.1f} "
                        f"tok/s  ttft p50 {r['ttft_p50_ms']:7.1f} ms  (ready {ready:.0f} s)",
                        flush=True,
                    )
                if who == "plain":
                    sh(c, "systemctl stop bench-plain-vllm", check=False)
    finally:
        sh(
            c,
            "systemctl stop bench-plain-vllm; systemctl reset-failed bench-plain-vllm",
            check=False,
        )
        sh(c, "systemctl start vllm vllm-liveness.timer", check=False)
    print("\nconcurrency  ours tok/s  plain tok/s  ratio ours/plain")
    summary = []
    for conc in a.concurrency:
        ours = statistics.mean(r["output_tok_per_s"] for r in results["ours"][conc])
        plain = statistics.mean(r["output_tok_per_s"] for r in results["plain"][conc])
        summary.append(
            {
                "concurrency": conc,
                "ours": round(ours, 1),
                "plain": round(plain, 1),
                "ratio": round(ours / plain, 3),
            }
        )
        print(f"{conc:11d}  {ours:10.1f}  {plain:11.1f}  {ours / plain:16.3f}")
    print(json.dumps({"throughput": summary, "runs": results}))


def reconverge(a: argparse.Namespace) -> None:
    env = dict(os.environ, LLMHOST_RUN_ID=a.run_id, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        "inventories/lab",
        "playbooks/lab.yml",
    ]
    start = time.monotonic()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    recap = re.findall(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+).*failed=(\d+)", out.stdout, re.M)
    print(out.stdout[-1500:] if out.returncode else "")
    for host, ok, changed, failed in recap:
        print(f"{host}: ok={ok} changed={changed} failed={failed}")
    print(f"re-converge of an unchanged lab host: {wall:.1f} s (rc {out.returncode})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--container", default=os.environ.get("LLMHOST_LAB_NAME", "llmhost-lab"))
    t.add_argument("--rounds", type=int, default=2)
    t.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    t.add_argument("--tokens", type=int, default=64)
    r = sub.add_parser("reconverge")
    r.add_argument("--run-id", required=True)
    a = p.parse_args()
    throughput(a) if a.cmd == "throughput" else reconverge(a)


if __name__ == "__main__":
    main()
