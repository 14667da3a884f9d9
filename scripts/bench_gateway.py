"""Gateway overhead on the lab host: direct to vLLM vs through the nginx gateway (TLS,
tenant auth, limits and JSON logging on), same run, same model, same load (16 concurrent
streams by default), rounds alternated (direct, gateway | gateway, direct | ...) so drift
hits both sides alike.

Usage (needs a lab host that is serving: `make lab` tears its host down at the end):

    make lab-up
    make train INVENTORY=inventories/lab && make deploy INVENTORY=inventories/lab
    .venv/bin/python scripts/bench_gateway.py > gateway-bench.json
    make teardown INVENTORY=inventories/lab && make lab-down

Both clients run INSIDE the lab container (scripts/bench_vllm_load.py with vLLM's venv,
which has the official openai client) against 127.0.0.1: vLLM on :8000 with its internal
key, the gateway on :443 with a tenant key (lab_load by default) and the gateway's
certificate. Nothing else may use that tenant meanwhile (the drain probe, a load test).

Writes one JSON document on stdout and a short table on stderr: the throughput ratio
(gateway / direct, medians of the rounds), the gateway's added p50 latency of a cheap
request (GET /v1/models on a keep-alive connection: the proxy's own cost) and of TTFT,
and nginx's CPU seconds per 1,000 streamed tokens (utime + stime of nginx's master and
workers from /proc/<pid>/stat inside the container, just before and after each round's
streams; the same figure in direct rounds is nginx's background, e.g. monitoring's
scrapes, reported beside it and subtracted in the "net" figure), and the client's own CPU
per 1,000 tokens on each side (its TLS and parsing share the cores too).

The tenant's limits are never tripped: they are read from the inventory
(gateway_tenants, gateway_tenant_defaults; --rate-per-minute, --burst and
--tenant-concurrency override them) and a run that could trip them is refused before
any request, naming the tenant and the limit. Sizing is conservative: every request of a
gateway round (the timed GET /v1/models, two warm-ups, the streams) counts as if it came
at once, so a round must fit in the burst; before each gateway round the script waits
until the tenant's bucket has drained (round's requests / rate). A 429 during a run is a
failure of the benchmark's setup (someone else used the tenant, limits changed), reported
as such with exit status 2, never as a throughput figure.

Keys: the tenant key comes from --tenant-key-file (0600) or the inventory's vault
(ansible-vault view with the lab's password file); it goes into the container on the
stdin of `docker exec -i`, never on a command line there or here; vLLM's key is read by
name from the unit's environment file inside the container. Every error and every line
printed is scrubbed of the keys the script knows (and of any "Bearer <token>").

What limits the ratio here (why it is not 1.0): every SSE event is one TLS record and a
few syscalls in nginx (proxy_buffering off flushes each event as it comes, as streaming
needs), the client decrypts TLS on its side, each request writes a JSON access-log line,
and on the lab the client, nginx and vLLM share 2 CPU cores, so nginx's and the TLS
client's cycles are taken from vLLM's. A tiny model makes tokens cheap and the per-event
cost large in comparison; on a GPU host nginx runs on cores vLLM does not need. nginx
CPU per 1,000 tokens is the figure that carries over to other hosts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
LOAD = ROOT / "scripts" / "bench_vllm_load.py"
LOAD_IN_LAB = "/root/bench_vllm_load.py"
ROLE_DEFAULTS = ROOT / "roles" / "gateway" / "defaults" / "main.yml"
CA = "/etc/nginx/llmhost/tls/gateway.crt"
GATEWAY_URL = "https://127.0.0.1:443"
DIRECT_URL = "http://127.0.0.1:8000"
WARMUPS = 2  # one GET /v1/models, one short completion (bench_vllm_load.py)
STREAMS_PER_SLOT = 3  # streams per round = concurrency x this
DRAIN_MARGIN_S = 1.0
EXIT_RATE_LIMITED = 3  # bench_vllm_load.py's exit statuses
EXIT_FAILED = 4
REDACTED = "<redacted>"
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
_VAULT_REF = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}$")

Runner = Callable[[list[str], str | None], subprocess.CompletedProcess[str]]


class SetupError(Exception):
    """The benchmark cannot give an honest figure: a limit, a key, a lab that is not
    serving, a 429. The message never holds a key (scrubbed where it is made)."""


def scrub(text: str, secrets: Iterable[str]) -> str:
    """TEXT without any of SECRETS nor any bearer token."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _BEARER.sub(rf"\g<1>{REDACTED}", text)


# --- the tenant's limits and the plan of the rounds ----------------------------------------


@dataclass(frozen=True)
class Limits:
    tenant: str
    rate_per_minute: int
    burst: int
    concurrency: int
    source: str


def _group_vars(inventory: Path) -> dict[str, Any]:
    """The inventory's group_vars/all (every plain YAML file; a vault file is skipped)."""
    merged: dict[str, Any] = {}
    folder = inventory / "group_vars" / "all"
    files = sorted(folder.glob("*.yml")) if folder.is_dir() else []
    for path in files:
        text = path.read_text(encoding="utf-8")
        if text.startswith("$ANSIBLE_VAULT;"):
            continue
        data = yaml.safe_load(text)
        if isinstance(data, dict):
            merged.update(data)
    return merged


def tenant_entry(inventory: Path, tenant: str) -> dict[str, Any]:
    """The tenant as the gateway role sees it: gateway_tenant_defaults, then its own."""
    inv = _group_vars(inventory)
    role = yaml.safe_load(ROLE_DEFAULTS.read_text(encoding="utf-8"))
    defaults = inv.get("gateway_tenant_defaults", role["gateway_tenant_defaults"])
    tenants = inv.get("gateway_tenants") or []
    found = [t for t in tenants if isinstance(t, dict) and t.get("name") == tenant]
    if not found:
        names = ", ".join(str(t.get("name")) for t in tenants if isinstance(t, dict))
        raise SetupError(
            f"tenant {tenant!r} is not in gateway_tenants of {inventory} "
            f"(tenants: {names or 'none'}); pick one with --tenant"
        )
    return {**defaults, **found[0]}


def tenant_limits(
    inventory: Path,
    tenant: str,
    rate_per_minute: int | None = None,
    burst: int | None = None,
    concurrency: int | None = None,
) -> Limits:
    """The tenant's limits: the inventory's, each overridden when passed."""
    given = {"rate_per_minute": rate_per_minute, "rate_burst": burst, "concurrency": concurrency}
    entry: dict[str, Any] = {}
    if any(v is None for v in given.values()):
        entry = tenant_entry(inventory, tenant)
    values: dict[str, int] = {}
    for name, value in given.items():
        raw = value if value is not None else entry.get(name)
        if not isinstance(raw, int) or isinstance(raw, bool):
            flag = {"rate_per_minute": "--rate-per-minute", "rate_burst": "--burst"}.get(
                name, "--tenant-concurrency"
            )
            raise SetupError(
                f"tenant {tenant!r}: {name} in {inventory} is {raw!r}, not a number "
                f"(a template?); pass it with {flag}"
            )
        values[name] = raw
    source = "command line" if entry == {} else f"{inventory} (gateway_tenants)"
    return Limits(
        tenant, values["rate_per_minute"], values["rate_burst"], values["concurrency"], source
    )


@dataclass(frozen=True)
class Plan:
    concurrency: int
    streams: int
    models_requests: int
    rounds: int
    requests_per_gateway_round: int
    drain_s: float


def plan_rounds(
    limits: Limits, concurrency: int, streams: int, models_requests: int, rounds: int
) -> Plan:
    """Rounds that stay under the tenant's limits, or a SetupError that says which one.

    nginx's limit_req (burst, nodelay) lets a request through while the bucket's excess
    stays within the burst; the excess drains at the rate. A round is sized as if all its
    requests came at once (it must fit in the burst), and the next gateway round waits
    until it has drained. limit_conn: the streams in flight must fit in the concurrency.
    """
    if min(concurrency, streams, rounds) < 1 or models_requests < 1:
        raise SetupError("concurrency, streams, rounds and models requests must be >= 1")
    t = limits.tenant
    if concurrency > limits.concurrency:
        raise SetupError(
            f"tenant {t!r} allows {limits.concurrency} requests in flight ({limits.source}); "
            f"{concurrency} concurrent streams would be refused (429): lower --concurrency "
            f"or use a tenant with a higher concurrency"
        )
    per_round = models_requests + WARMUPS + streams
    if per_round > limits.burst:
        room = limits.burst - WARMUPS - streams
        hint = (
            f"lower --models-requests to at most {room}"
            if room >= 1
            else "lower --concurrency (streams per round = 3 x concurrency)"
        )
        raise SetupError(
            f"tenant {t!r} lets a burst of {limits.burst} requests through above its rate of "
            f"{limits.rate_per_minute}/min ({limits.source}); one gateway round sends "
            f"{per_round} ({models_requests} GET /v1/models + {WARMUPS} warm-ups + "
            f"{streams} streams), counted as if at once: {hint}"
        )
    drain = math.ceil(per_round * 60 / limits.rate_per_minute) + DRAIN_MARGIN_S
    return Plan(concurrency, streams, models_requests, rounds, per_round, drain)


def order(rounds: int) -> list[tuple[int, str]]:
    """(round, side) in run order: direct first in even rounds, gateway first in odd."""
    out = []
    for i in range(rounds):
        sides = ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct")
        out += [(i + 1, side) for side in sides]
    return out


@dataclass
class Pacer:
    """Waits before a gateway round until the tenant's bucket has drained since the last
    one (the run starts with a full wait: the bucket's state before it is unknown)."""

    drain_s: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    last_end: float | None = None
    waited_s: float = 0.0

    def before_gateway_round(self) -> None:
        since = self.clock() - self.last_end if self.last_end is not None else 0.0
        wait = max(0.0, self.drain_s - since)
        if wait > 0:
            self.sleep(wait)
            self.waited_s += wait

    def after_gateway_round(self) -> None:
        self.last_end = self.clock()


# --- arithmetic ------------------------------------------------------------------------


@dataclass(frozen=True)
class Cpu:
    seconds: float
    pids_changed: bool  # a process came or went: its ticks may be missing


def cpu_seconds(cpu: Mapping[str, Any]) -> Cpu:
    """nginx's CPU seconds between two /proc snapshots ({pid: utime+stime ticks})."""
    before = {int(k): int(v) for k, v in cpu["before"].items()}
    after = {int(k): int(v) for k, v in cpu["after"].items()}
    if not after:
        raise SetupError(f"no {cpu.get('comm', 'nginx')} process in the container")
    ticks = sum(v - before.get(pid, 0) for pid, v in after.items())
    return Cpu(ticks / int(cpu["clk_tck"]), set(before) != set(after))


def per_1k_tokens(cpu_s: float, tokens: int) -> float:
    if tokens <= 0:
        raise SetupError("a round streamed no tokens")
    return cpu_s * 1000 / tokens


def ratio(gateway: float, direct: float) -> float:
    if direct <= 0:
        raise SetupError("direct throughput is 0: vLLM is not serving")
    return round(gateway / direct, 3)


def summarize(rounds: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Medians per side, the ratio, the added p50s and nginx's CPU per 1k tokens."""

    def med(side: str, name: str) -> float:
        return statistics.median(r[name] for r in rounds[side])

    fields = ("output_tok_per_s", "ttft_p50_ms", "models_p50_ms")
    direct = {f: med("direct", f) for f in fields}
    gateway = {f: med("gateway", f) for f in fields}
    out: dict[str, Any] = {
        "direct": direct,
        "gateway": gateway,
        "throughput_ratio": ratio(gateway["output_tok_per_s"], direct["output_tok_per_s"]),
        "added_p50_ms_models": round(gateway["models_p50_ms"] - direct["models_p50_ms"], 3),
        "added_p50_ms_ttft": round(gateway["ttft_p50_ms"] - direct["ttft_p50_ms"], 1),
    }
    if all("client_cpu_s" in r for side in rounds.values() for r in side):
        # The client shares the cores too: its TLS and parsing cost is part of the ratio.
        out["client_cpu_s_per_1k_tokens"] = {
            s: round(
                statistics.median(
                    per_1k_tokens(r["client_cpu_s"], r["output_tokens"]) for r in rounds[s]
                ),
                4,
            )
            for s in ("direct", "gateway")
        }
    if all("cpu" in r for side in rounds.values() for r in side):
        cpu = {s: [cpu_seconds(r["cpu"]) for r in rounds[s]] for s in rounds}
        changed = any(c.pids_changed for cs in cpu.values() for c in cs)
        background = statistics.median(
            c.seconds / r["wall_s"] for c, r in zip(cpu["direct"], rounds["direct"], strict=True)
        )
        raw = [
            per_1k_tokens(c.seconds, r["output_tokens"])
            for c, r in zip(cpu["gateway"], rounds["gateway"], strict=True)
        ]
        net = [
            per_1k_tokens(max(0.0, c.seconds - background * r["wall_s"]), r["output_tokens"])
            for c, r in zip(cpu["gateway"], rounds["gateway"], strict=True)
        ]
        out["nginx_cpu_s_per_1k_tokens"] = None if changed else round(statistics.median(raw), 4)
        out["nginx_cpu_s_per_1k_tokens_net"] = None if changed else round(statistics.median(net), 4)
        out["nginx_background_cpu_s_per_s"] = round(background, 4)
        if changed:
            out["nginx_cpu_note"] = "nginx processes came or went during a round (a reload?)"
    return out


def table(report: Mapping[str, Any]) -> str:
    d, g = report["direct"], report["gateway"]
    cpu = report.get("nginx_cpu_s_per_1k_tokens")
    net = report.get("nginx_cpu_s_per_1k_tokens_net")
    return "\n".join(
        [
            f"{'':8s} {'tok/s':>9s} {'TTFT p50 ms':>12s} {'/v1/models p50 ms':>18s}",
            f"{'direct':8s} {d['output_tok_per_s']:9.1f} {d['ttft_p50_ms']:12.1f} "
            f"{d['models_p50_ms']:18.3f}",
            f"{'gateway':8s} {g['output_tok_per_s']:9.1f} {g['ttft_p50_ms']:12.1f} "
            f"{g['models_p50_ms']:18.3f}",
            f"throughput gateway/direct {report['throughput_ratio']:.3f} at "
            f"{report['concurrency']} streams; added p50: /v1/models "
            f"{report['added_p50_ms_models']:+.3f} ms, TTFT {report['added_p50_ms_ttft']:+.1f} ms",
            f"nginx CPU s per 1k streamed tokens: {cpu} (net of background: {net})",
            f"client CPU s per 1k streamed tokens: {report.get('client_cpu_s_per_1k_tokens')}",
        ]
    )


# --- the lab container -----------------------------------------------------------------


def docker_runner(args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)


@dataclass
class Lab:
    """docker exec into the lab container; every error it raises is scrubbed."""

    container: str
    secrets: Sequence[str] = field(repr=False)
    runner: Runner = docker_runner

    def sh(self, cmd: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        interactive = ["-i"] if stdin is not None else []
        return self.runner(["docker", "exec", *interactive, self.container, "sh", "-c", cmd], stdin)

    def check(self, cmd: str) -> str:
        out = self.sh(cmd)
        if out.returncode != 0:
            raise SetupError(self.scrub(f"{cmd!r} failed in {self.container}: {tail(out)}"))
        return out.stdout

    def copy_in(self, src: Path, dest: str) -> None:
        out = self.runner(["docker", "cp", str(src), f"{self.container}:{dest}"], None)
        if out.returncode != 0:
            raise SetupError(self.scrub(f"docker cp to {self.container} failed: {tail(out)}"))

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)


def tail(out: subprocess.CompletedProcess[str]) -> str:
    return (out.stderr.strip() or out.stdout.strip())[-500:]


def load_command(side: str, venv: str, model: str, plan: Plan, tokens: int) -> str:
    """The load script's command line in the container: no key on it."""
    base = (
        f"{shlex.quote(venv)}/bin/python {LOAD_IN_LAB} --model {shlex.quote(model)} "
        f"--concurrency {plan.concurrency} --requests {plan.streams} --tokens {tokens} "
        f"--models-requests {plan.models_requests} --cpu-comm nginx"
    )
    if side == "direct":
        # vLLM's key by name from the unit's 0600 environment file, inside the container.
        env = "set -a; . /etc/llmhost/vllm.env; set +a;"
        return f"{env} {base} --url {DIRECT_URL} --key-env VLLM_API_KEY"
    return f"{base} --url {GATEWAY_URL} --ca {CA} --key-stdin"


def run_round(
    lab: Lab, side: str, venv: str, model: str, plan: Plan, tokens: int, key: str, tenant: str
) -> dict[str, Any]:
    cmd = load_command(side, venv, model, plan, tokens)
    out = lab.sh(cmd, stdin=key + "\n" if side == "gateway" else None)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    try:
        result = json.loads(last) if last else None
    except json.JSONDecodeError:
        result = None
    if out.returncode == EXIT_RATE_LIMITED and side == "gateway":
        failures = (result or {}).get("failures", {})
        raise SetupError(
            f"benchmark setup failure, not a throughput figure: tenant {tenant!r} was "
            f"refused with 429 ({failures.get('429', '?')} requests, phase "
            f"{(result or {}).get('phase', '?')}) although the rounds were sized under its "
            f"limits: another client used the tenant meanwhile, or the gateway's limits are "
            f"not the inventory's (pass --rate-per-minute/--burst/--tenant-concurrency)"
        )
    if out.returncode != 0 or not isinstance(result, dict) or "error" in result:
        what = (result or {}).get("failures") or tail(out)
        raise SetupError(lab.scrub(f"{side} round failed (exit {out.returncode}): {what}"))
    return result


# --- keys ------------------------------------------------------------------------------


def read_key_file(path: Path) -> str:
    """The first word of a key file that only its owner may read."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SetupError(f"{path} is mode {mode:04o}: a key file must be 0600 (chmod 600)")
        words = path.read_text(encoding="utf-8").split()
    except OSError as exc:
        raise SetupError(f"cannot read the key file {path}: {exc.strerror}") from None
    if not words:
        raise SetupError(f"{path} holds no key")
    return words[0]


def vault_values(inventory: Path, password_file: Path) -> dict[str, Any]:
    """The inventory's vault (group_vars/all/vault.yml), decrypted into memory only."""
    vault = inventory / "group_vars" / "all" / "vault.yml"
    av = Path(sys.executable).parent / "ansible-vault"
    out = subprocess.run(
        [str(av), "view", "--vault-password-file", str(password_file), str(vault)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SetupError(f"cannot open {vault} with {password_file} (ansible-vault view failed)")
    data = yaml.safe_load(out.stdout)
    return data if isinstance(data, dict) else {}


def key_from_vault(expression: Any, vault: Mapping[str, Any], tenant: str) -> str:
    """A tenant's key field ("{{ vault_gateway_keys.lab_load }}") looked up in the vault."""
    match = _VAULT_REF.match(expression) if isinstance(expression, str) else None
    if not match:
        raise SetupError(
            f"tenant {tenant!r}: its key is not a vault reference; use --tenant-key-file"
        )
    value: Any = vault
    for part in match.group(1).split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if not isinstance(value, str) or not value:
        raise SetupError(f"tenant {tenant!r}: {match.group(1)} is not in the vault")
    return value


def leaves(data: Any) -> list[str]:
    """Every string of a decrypted vault (all scrubbed from output)."""
    if isinstance(data, Mapping):
        return [s for v in data.values() for s in leaves(v)]
    if isinstance(data, list):
        return [s for v in data for s in leaves(v)]
    return [data] if isinstance(data, str) and len(data) >= 4 else []


# --- main ------------------------------------------------------------------------------


def bench(
    lab: Lab, limits: Limits, plan: Plan, tokens: int, key: str, pacer: Pacer
) -> dict[str, Any]:
    release = json.loads(lab.check("cat /opt/llmhost/vllm/current/release.json"))
    venv, model = release["venv"], release["served_model_name"]
    lab.copy_in(LOAD, LOAD_IN_LAB)
    rounds: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
    for number, side in order(plan.rounds):
        if side == "gateway":
            pacer.before_gateway_round()
        try:
            result = run_round(lab, side, venv, model, plan, tokens, key, limits.tenant)
        finally:
            if side == "gateway":
                pacer.after_gateway_round()
        rounds[side].append(result)
        print(
            lab.scrub(
                f"round {number} {side:7s}: {result['output_tok_per_s']:8.1f} tok/s, "
                f"TTFT p50 {result['ttft_p50_ms']:.1f} ms"
            ),
            file=sys.stderr,
            flush=True,
        )
    report: dict[str, Any] = {
        "concurrency": plan.concurrency,
        "streams_per_round": plan.streams,
        "tokens_per_request": tokens,
        "rounds": plan.rounds,
        "model": model,
        "tenant_limits": asdict(limits),
        "plan": asdict(plan),
        "paced_s": round(pacer.waited_s, 1),
        **summarize(rounds),
        "goal": "throughput_ratio >= 0.97 and added p50 < 2 ms",
        "all_rounds": rounds,
    }
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--container", default=os.environ.get("LLMHOST_LAB_NAME", "llmhost-lab"))
    p.add_argument("--inventory", type=Path, default=ROOT / "inventories" / "lab")
    p.add_argument("--tenant", default="lab_load")
    p.add_argument("--concurrency", type=int, default=16, help="streams in flight")
    p.add_argument("--tokens", type=int, default=64, help="tokens per stream")
    p.add_argument("--rounds", type=int, default=3, help="rounds per side")
    p.add_argument("--models-requests", type=int, default=100, help="timed GET /v1/models")
    p.add_argument("--rate-per-minute", type=int, help="the tenant's rate (else the inventory's)")
    p.add_argument("--burst", type=int, help="the tenant's rate_burst (else the inventory's)")
    p.add_argument("--tenant-concurrency", type=int, help="the tenant's concurrency limit")
    p.add_argument(
        "--tenant-key-file",
        type=Path,
        help="the tenant key, a 0600 file (else the inventory's vault)",
    )
    p.add_argument(
        "--vault-password-file",
        type=Path,
        default=os.environ.get("LLMHOST_VAULT_PASSWORD_FILE"),
        help="(else .cache/vault/<inventory>.pass, as make's targets)",
    )
    return p.parse_args(argv)


def main(
    argv: Sequence[str] | None = None,
    runner: Runner = docker_runner,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    a = parse_args(argv)
    secrets: list[str] = []
    try:
        limits = tenant_limits(
            a.inventory, a.tenant, a.rate_per_minute, a.burst, a.tenant_concurrency
        )
        plan = plan_rounds(
            limits, a.concurrency, a.concurrency * STREAMS_PER_SLOT, a.models_requests, a.rounds
        )
        if a.tenant_key_file:
            key = read_key_file(a.tenant_key_file)
            secrets = [key]
        else:
            password = a.vault_password_file or (
                ROOT / ".cache" / "vault" / f"{a.inventory.resolve().name}.pass"
            )
            vault = vault_values(a.inventory, Path(password))
            secrets = leaves(vault)
            key = key_from_vault(tenant_entry(a.inventory, a.tenant).get("key"), vault, a.tenant)
            secrets.append(key)
        lab = Lab(a.container, secrets, runner)
        report = bench(lab, limits, plan, a.tokens, key, Pacer(plan.drain_s, sleep=sleep))
    except SetupError as exc:
        message = scrub(str(exc), secrets)
        print(f"bench_gateway: {message}", file=sys.stderr)
        print(json.dumps({"ok": False, "error": message}))
        return 2
    print(scrub(table(report), secrets), file=sys.stderr)
    print(scrub(json.dumps(report, indent=2), secrets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
