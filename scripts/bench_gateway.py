"""Gateway overhead on the lab host: direct to vLLM vs through the nginx gateway (TLS,
tenant auth, limits and JSON logging on), same run, same model, same load, rounds
alternated so drift hits both sides alike.

Both clients run INSIDE the lab container (vLLM's venv has the official openai client)
against 127.0.0.1: vLLM on :8000 with its internal key, the gateway on :443 with a
tenant key and the gateway's certificate. Prints one JSON document:
throughput ratio (gateway / direct) and the added p50 latency of a cheap request
(GET /v1/models on a keep-alive connection: the proxy's own cost) and of TTFT.

Needs a lab from `make lab` that is still serving (before teardown), e.g.
`LLMHOST_LAB_KEEP=1 make lab` or `make lab-up` + `ansible-playbook playbooks/serve.yml`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from bench_vllm import LOAD, ROOT, sh  # same folder: the docker exec helper and the load script

CA = "/etc/nginx/llmhost/tls/gateway.crt"


def load(
    container: str, venv: str, side: str, model: str, conc: int, tokens: int, tenant_key: str
) -> dict:
    base = (
        f"{venv}/bin/python /root/bench_vllm_load.py --model {shlex.quote(model)} "
        f"--concurrency {conc} --requests {conc * 3} --tokens {tokens}"
    )
    if side == "direct":
        cmd = (
            "set -a; . /etc/llmhost/vllm.env; set +a; "
            f'{base} --url http://127.0.0.1:8000 --key "$VLLM_API_KEY"'
        )
    else:
        cmd = f"{base} --url https://127.0.0.1:443 --ca {CA} --key {shlex.quote(tenant_key)}"
    return json.loads(sh(container, cmd).strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--container", default=os.environ.get("LLMHOST_LAB_NAME", "llmhost-lab"))
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--tenant-key-file",
        default=str(ROOT / ".cache" / "secrets" / "gateway_key_lab_load"),
        help="the tenant key (a 0600 file; the lab's load tenant by default)",
    )
    a = p.parse_args()
    key = Path(a.tenant_key_file).read_text(encoding="utf-8").split()[0]
    release = json.loads(sh(a.container, "cat /opt/llmhost/vllm/current/release.json"))
    venv, model = release["venv"], release["served_model_name"]
    subprocess.run(
        ["docker", "cp", str(LOAD), f"{a.container}:/root/bench_vllm_load.py"], check=True
    )
    rounds: dict[str, list[dict]] = {"direct": [], "gateway": []}
    for i in range(a.rounds):
        for side in ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct"):
            result = load(a.container, venv, side, model, a.concurrency, a.tokens, key)
            rounds[side].append(result)
            print(f"round {i + 1} {side}: {result}", file=sys.stderr, flush=True)

    def med(side: str, field: str) -> float:
        return statistics.median(r[field] for r in rounds[side])

    fields = ("output_tok_per_s", "ttft_p50_ms", "models_p50_ms")
    direct = {f: med("direct", f) for f in fields}
    gateway = {f: med("gateway", f) for f in fields}

    report = {
        "concurrency": a.concurrency,
        "tokens_per_request": a.tokens,
        "rounds": a.rounds,
        "direct": direct,
        "gateway": gateway,
        "throughput_ratio": round(gateway["output_tok_per_s"] / direct["output_tok_per_s"], 3),
        "added_p50_ms_models": round(gateway["models_p50_ms"] - direct["models_p50_ms"], 3),
        "added_p50_ms_ttft": round(gateway["ttft_p50_ms"] - direct["ttft_p50_ms"], 1),
        "goal": "throughput_ratio >= 0.97 and added p50 < 2 ms",
        "all_rounds": rounds,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
