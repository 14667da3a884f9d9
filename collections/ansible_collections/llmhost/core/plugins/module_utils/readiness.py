"""The readiness report: every item of the reference checklists (roles/evidence/files/
checklists/*.yml) decided against a run's evidence bundle as pass, fail, n.a. or attested.

Each item is decided one way: a named check of CHECKS (with its args), an attestation the
inventory gives (evidence_attestations: id -> {owner, date, reference}), or n.a. with the
reason. A check reads files of the bundle (or of a per-host sub-folder <host>/<file>) and
names them, so an auditor can re-check every pass offline. Standard library and PyYAML.
"""

from __future__ import annotations

import csv
import datetime
import fnmatch
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCHEMA = "llmhost.readiness/v1"
PASS, FAIL, NA, ATTESTED = "pass", "fail", "n.a.", "attested"
STATUSES = (PASS, FAIL, NA, ATTESTED)
ATTEST_KEYS = ("owner", "date", "reference")


@dataclass(frozen=True)
class Item:
    """One checklist item and how it is decided."""

    id: str
    checklist: str
    section: str
    title: str
    check: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    attest: bool = False
    na: str = ""


@dataclass
class Result:
    """One decided item, as readiness.json holds it."""

    id: str
    checklist: str
    section: str
    title: str
    status: str
    evidence: list[str]
    check: str
    detail: str


@dataclass(frozen=True)
class Checklist:
    id: str
    title: str
    source: str
    items: tuple[Item, ...]


Outcome = tuple[str, list[str], str]  # status, evidence files, detail


# --- the checklists ---------------------------------------------------------------------


def load_checklists(folder: Path) -> list[Checklist]:
    """Every *.yml of folder, sorted by file name; ValueError on a malformed item."""
    lists = []
    for path in sorted(folder.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        items = []
        for raw in data.get("items") or []:
            kinds = [k for k in ("check", "attest", "na") if raw.get(k)]
            if len(kinds) != 1:
                raise ValueError(
                    f"{path.name}: item {raw.get('id')} needs exactly one of check/attest/na"
                )
            if raw.get("check") and raw["check"] not in CHECKS:
                raise ValueError(
                    f"{path.name}: item {raw['id']} names unknown check {raw['check']}"
                )
            items.append(
                Item(
                    id=str(raw["id"]),
                    checklist=str(data["checklist"]),
                    section=str(raw["section"]),
                    title=str(raw["title"]),
                    check=str(raw.get("check") or ""),
                    args=dict(raw.get("args") or {}),
                    attest=bool(raw.get("attest")),
                    na=str(raw.get("na") or ""),
                )
            )
        lists.append(Checklist(str(data["checklist"]), str(data["title"]), path.name, tuple(items)))
    ids = [i.id for c in lists for i in c.items]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate item ids: {', '.join(dupes)}")
    return lists


def input_errors(checklists: list[Checklist], attestations: Any, required: Any) -> list[str]:
    """What is wrong with evidence_attestations and evidence_readiness_required."""
    items = {i.id: i for c in checklists for i in c.items}
    errors = []
    if not isinstance(attestations, dict):
        return [
            "evidence_attestations must be a mapping of item id -> {owner, date, reference}, "
            f"got {attestations!r}"
        ]
    for key, value in attestations.items():
        item = items.get(str(key))
        if item is None:
            errors.append(f"evidence_attestations: unknown item id {key!r}")
        elif not item.attest:
            how = f"check {item.check}" if item.check else "n.a."
            errors.append(f"evidence_attestations.{key}: decided by {how}, not attestable")
        else:
            errors.extend(f"evidence_attestations.{key}: {p}" for p in attestation_problems(value))
    if not isinstance(required, list):
        return [
            *errors,
            f"evidence_readiness_required must be a list of item ids, got {required!r}",
        ]
    for key in required:
        item = items.get(str(key))
        if item is None:
            errors.append(f"evidence_readiness_required: unknown item id {key!r}")
        elif item.na:
            errors.append(
                f"evidence_readiness_required: {key} is n.a. ({item.na}) and can never pass"
            )
    return errors


def attestation_problems(value: Any) -> list[str]:
    """Why an attestation does not count (empty when it does)."""
    if not isinstance(value, dict):
        return ["must be a mapping {owner, date, reference}"]
    problems = [f"{k} is empty" for k in ATTEST_KEYS if not str(value.get(k) or "").strip()]
    if str(value.get("date") or "").strip():
        try:
            datetime.date.fromisoformat(str(value["date"]))
        except ValueError:
            problems.append(f"date {value['date']!r} is not an ISO date (YYYY-MM-DD)")
    return problems


# --- the bundle -------------------------------------------------------------------------


class Bundle:
    """Read access to a bundle: a file at the top or in a per-host sub-folder."""

    def __init__(self, root: Path, hosts: Iterable[str] = ()) -> None:
        self.root = root
        self.hosts = [h for h in hosts if h]

    def find(self, rel: str) -> list[str]:
        """rel and <host>/rel that exist, bundle-relative."""
        names = [rel, *(f"{h}/{rel}" for h in self.hosts)]
        return [n for n in names if (self.root / n).is_file()]

    def glob(self, pattern: str) -> list[str]:
        found = sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )
        return [f for f in found if fnmatch.fnmatch(f.rsplit("/", 1)[-1], pattern)]

    def json(self, rel: str) -> list[tuple[str, Any]]:
        out = []
        for name in self.find(rel):
            try:
                out.append((name, json.loads((self.root / name).read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                out.append((name, None))
        return out

    def text(self, rel: str) -> list[tuple[str, str]]:
        out = []
        for name in self.find(rel):
            try:
                out.append((name, (self.root / name).read_text(encoding="utf-8", errors="replace")))
            except OSError:
                out.append((name, ""))
        return out


def _missing(rel: str) -> Outcome:
    return FAIL, [], f"no {rel} in the bundle"


def lookup(data: Any, key: str) -> tuple[bool, Any]:
    """(found, value) of a dotted key."""
    for part in key.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False, None
    return True, data


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _test(value: Any, op: str, want: Any) -> bool:
    number, target = _number(value), _number(want)
    tests: dict[str, Callable[[], bool]] = {
        "true": lambda: value is True or str(value).lower() == "true",
        "eq": lambda: value == want or (number is not None and number == target),
        "in": lambda: value in (want or []),
        "match": lambda: isinstance(value, str) and re.search(str(want), value) is not None,
        "ge": lambda: number is not None and target is not None and number >= target,
        "gt": lambda: number is not None and target is not None and number > target,
        "nonempty": lambda: value not in (None, "", [], {}),
        "empty": lambda: value in (None, "", [], {}),
        "contains": lambda: isinstance(value, list | str) and want in value,
        "each_eq": lambda: (
            isinstance(value, dict)
            and bool(value)
            and all(_test(v, "eq", want) for v in value.values())
        ),
    }
    if op not in tests:
        raise ValueError(f"unknown op {op}")
    return tests[op]()


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


# --- the checks -------------------------------------------------------------------------
# Each takes the bundle, the item's args and the results so far, and returns an Outcome.

Results = dict[str, Result]


def check_json(bundle: Bundle, args: dict[str, Any], _: Results) -> Outcome:
    """Every condition ({key, op, value}) holds in every copy of args.file."""
    rel = str(args["file"])
    copies = bundle.json(rel)
    if not copies:
        return _missing(rel)
    seen, failed = [], []
    for name, data in copies:
        if data is None:
            failed.append(f"{name} is not JSON")
            continue
        for cond in args.get("all") or []:
            found, value = lookup(data, str(cond["key"]))
            op, want = str(cond["op"]), cond.get("value")
            shown = f"{cond['key']} = {_short(value)}" if found else f"no {cond['key']}"
            if found and _test(value, op, want):
                seen.append(shown)
            else:
                failed.append(
                    f"{name}: {shown} (wanted {op}{' ' + _short(want) if want is not None else ''})"
                )
    names = [n for n, _ in copies]
    if failed:
        return FAIL, names, "; ".join(failed)
    return PASS, names, "; ".join(dict.fromkeys(seen))


def check_text(bundle: Bundle, args: dict[str, Any], _: Results) -> Outcome:
    """args.pattern matches at least args.min times in every copy of args.file."""
    rel, pattern, least = (
        str(args["file"]),
        re.compile(str(args["pattern"]), re.M),
        int(args.get("min", 1)),
    )
    copies = bundle.text(rel)
    if not copies:
        return _missing(rel)
    counts = {name: len(pattern.findall(text)) for name, text in copies}
    low = [
        f"{n}: {c} match(es) of /{args['pattern']}/, wanted {least}"
        for n, c in counts.items()
        if c < least
    ]
    if low:
        return FAIL, list(counts), "; ".join(low)
    return PASS, list(counts), f"/{args['pattern']}/ matches {min(counts.values())} time(s)"


def check_present(bundle: Bundle, args: dict[str, Any], _: Results) -> Outcome:
    """Every args.files is present, or any file matches one of args.any (name patterns)."""
    if args.get("any"):
        found = [f for pattern in args["any"] for f in bundle.glob(str(pattern))]
        if not found:
            return FAIL, [], f"no file matching {', '.join(args['any'])} in the bundle"
        return PASS, sorted(set(found)), f"{len(set(found))} file(s)"
    found, missing = [], []
    for rel in args.get("files") or []:
        names = bundle.find(str(rel))
        found += names
        if not names:
            missing.append(str(rel))
    if missing:
        return FAIL, found, f"no {', '.join(missing)} in the bundle"
    return PASS, found, f"{len(found)} file(s) present"


def check_items(_: Bundle, args: dict[str, Any], results: Results) -> Outcome:
    """Every item of args.ids (decided earlier) passed or is attested."""
    evidence: list[str] = []
    bad = []
    for key in args["ids"]:
        result = results.get(str(key))
        if result is None:
            bad.append(f"{key} not decided")
            continue
        evidence += [e for e in result.evidence if e not in evidence]
        if result.status not in (PASS, ATTESTED):
            bad.append(f"{key} {result.status}")
    if bad:
        return FAIL, evidence, "; ".join(bad)
    return PASS, evidence, f"{', '.join(map(str, args['ids']))} all pass"


def check_model_pinned(bundle: Bundle, _: dict[str, Any], __: Results) -> Outcome:
    """model_store.json: a hub model at a 40-hex commit; any other source by the sha256 of its
    files' manifest."""
    copies = bundle.json("model_store.json")
    if not copies:
        return _missing("model_store.json")
    bad, seen = [], []
    for name, data in copies:
        data = data if isinstance(data, dict) else {}
        source, revision = str(data.get("source", "")), str(data.get("revision", ""))
        manifest = str(data.get("manifest_sha256", ""))
        if source == "hub" and re.fullmatch(r"[0-9a-f]{40}", revision):
            seen.append(f"hub revision {revision}")
        elif source not in ("", "hub") and re.fullmatch(r"[0-9a-f]{64}", manifest):
            seen.append(f"{source} model, manifest sha256 {manifest[:12]}…")
        else:
            bad.append(f"{name}: source {source or '?'} revision {revision or '?'} is not a pin")
    names = [n for n, _ in copies]
    return (FAIL, names, "; ".join(bad)) if bad else (PASS, names, "; ".join(seen))


def check_release_pinned(bundle: Bundle, args: dict[str, Any], results: Results) -> Outcome:
    """The model pinned (model_store.json) and the runtime's version named (first_run.md)."""
    status, evidence, detail = check_model_pinned(bundle, args, results)
    text = check_text(
        bundle, {"file": "first_run.md", "pattern": r"\(vllm(-cpu)? [0-9][^ )]*\)"}, results
    )
    if text[0] != PASS:
        return FAIL, evidence + text[1], f"{detail}; runtime version not in first_run.md"
    version = re.search(r"\((vllm(?:-cpu)? [0-9][^ )]*)\)", bundle.text("first_run.md")[0][1])
    runtime = version.group(1) if version else "?"
    return status, evidence + text[1], f"{detail}; runtime {runtime}"


def _eval_count(bundle: Bundle) -> tuple[list[str], int | None, dict[str, Any]]:
    """(evidence, number of cases, eval_summary.json) of the top-level evaluation."""
    summary = dict(bundle.json("eval_summary.json")[:1])
    name, data = next(iter(summary.items()), ("", None))
    data = data if isinstance(data, dict) else {}
    total = _number(data.get("total"))
    if total is not None:
        return [name], int(total), data
    for rel in bundle.find("eval_results.csv")[:1]:
        with (bundle.root / rel).open(encoding="utf-8", newline="") as handle:
            return [rel], sum(1 for _ in csv.DictReader(handle)), data
    return [], None, data


def check_eval_harness(bundle: Bundle, args: dict[str, Any], _: Results) -> Outcome:
    """Number of evaluation cases within [min_cases, max_cases], and the gated pass rate at
    least min_pass_rate (when given)."""
    evidence, total, summary = _eval_count(bundle)
    if total is None:
        return FAIL, [], "no eval_summary.json or eval_results.csv in the bundle"
    low, high = int(args.get("min_cases", 1)), args.get("max_cases")
    problems = []
    if total < low:
        problems.append(f"{total} cases, fewer than {low}")
    if high is not None and total > int(high):
        problems.append(f"{total} cases, more than {high}")
    detail = f"{total} cases"
    if _number(summary.get("duration_s")) is not None:
        detail += f" in {summary['duration_s']} s"
    if args.get("min_pass_rate") is not None:
        rate = _number(summary.get("gated_pass_rate", summary.get("pass_rate")))
        if rate is None:
            problems.append("no pass rate in eval_summary.json")
        else:
            detail += f", gated pass rate {rate}"
            if rate < float(args["min_pass_rate"]):
                problems.append(f"gated pass rate {rate} below {args['min_pass_rate']}")
    return (FAIL, evidence, "; ".join(problems)) if problems else (PASS, evidence, detail)


def check_load_test(bundle: Bundle, args: dict[str, Any], _: Results) -> Outcome:
    """load_test.json: concurrency at least min_concurrency, every request completed within
    max_error_rate."""
    copies = bundle.json("load_test.json")
    if not copies:
        return _missing("load_test.json")
    name, data = copies[0]
    data = data if isinstance(data, dict) else {}
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
    conc, rate = _number(data.get("concurrency")), _number(summary.get("error_rate"))
    done, asked = summary.get("completed"), summary.get("requests")
    p99 = lookup(summary, "latency_ms.p99")[1]
    detail = (
        f"{done}/{asked} ok at concurrency {data.get('concurrency')}, error rate {rate}, "
        f"latency p99 {p99} ms"
    )
    ok = (
        conc is not None
        and conc >= float(args.get("min_concurrency", 1))
        and rate is not None
        and rate <= float(args.get("max_error_rate", 0.0))
        and bool(asked)
    )
    return (PASS if ok else FAIL), [name], detail


def check_tls_protocols(bundle: Bundle, _: dict[str, Any], __: Results) -> Outcome:
    """gateway_report.json: TLS protocols all TLSv1.2 or TLSv1.3, at least one."""
    copies = bundle.json("gateway_report.json")
    if not copies:
        return _missing("gateway_report.json")
    bad, shown = [], []
    for name, data in copies:
        protocols = lookup(data, "tls.protocols")[1]
        protocols = protocols.split() if isinstance(protocols, str) else protocols
        if not isinstance(protocols, list) or not protocols:
            bad.append(f"{name}: no tls.protocols")
            continue
        old = [p for p in protocols if p not in ("TLSv1.2", "TLSv1.3")]
        shown.append(" ".join(map(str, protocols)))
        if old:
            bad.append(f"{name}: allows {', '.join(map(str, old))}")
    names = [n for n, _ in copies]
    return (FAIL, names, "; ".join(bad)) if bad else (PASS, names, f"protocols {'; '.join(shown)}")


def check_tenant_limits(bundle: Bundle, _: dict[str, Any], __: Results) -> Outcome:
    """gateway_report.json: every tenant has a positive rate_per_minute."""
    copies = bundle.json("gateway_report.json")
    if not copies:
        return _missing("gateway_report.json")
    name, data = copies[0]
    tenants = lookup(data, "tenants")[1]
    if not isinstance(tenants, list) or not tenants:
        return FAIL, [name], "no tenants in gateway_report.json"
    rates = {
        str(t.get("name")): _number(t.get("rate_per_minute"))
        for t in tenants
        if isinstance(t, dict)
    }
    bad = [n for n, r in rates.items() if not r or r <= 0]
    detail = ", ".join(f"{n} {r:g}/min" if r else f"{n} unlimited" for n, r in rates.items())
    return (FAIL if bad else PASS), [name], detail


def check_streaming(bundle: Bundle, _: dict[str, Any], __: Results) -> Outcome:
    """load_test.json (through the gateway): chunk gaps recorded and the first token well
    before the end (a buffering proxy delivers everything at once)."""
    copies = bundle.json("load_test.json")
    if not copies:
        return _missing("load_test.json")
    name, data = copies[0]
    summary = lookup(data, "summary")[1] or {}
    ttft, latency = (
        _number(lookup(summary, "ttft_ms.p50")[1]),
        _number(lookup(summary, "latency_ms.p50")[1]),
    )
    gaps = _number(lookup(summary, "itl_ms.count")[1]) or 0
    detail = f"TTFT p50 {ttft} ms of latency p50 {latency} ms, {int(gaps)} chunk gaps"
    ok = ttft is not None and latency is not None and gaps > 0 and ttft < 0.9 * latency
    return (PASS if ok else FAIL), [name], detail


def check_serving_check(bundle: Bundle, args: dict[str, Any], _: Results) -> Outcome:
    """serving_checks.json: the check args.name passed (skipped = n.a. with its reason)."""
    copies = bundle.json("serving_checks.json")
    if not copies:
        return _missing("serving_checks.json")
    statuses = []
    for name, data in copies:
        entries = [c for c in (lookup(data, "checks")[1] or []) if isinstance(c, dict)]
        entry = next((c for c in entries if c.get("name") == args["name"]), None)
        if entry is None:
            return FAIL, [name], f"{name} has no {args['name']} check"
        statuses.append((str(entry.get("status")), f"{entry.get('detail', '')}".strip()))
    names = [n for n, _ in copies]
    detail = "; ".join(d or s for s, d in statuses)
    if any(s == "fail" for s, _ in statuses) or any(
        s not in ("pass", "skipped") for s, _ in statuses
    ):
        return FAIL, names, detail
    return (NA if all(s == "skipped" for s, _ in statuses) else PASS), names, detail


def _targets(bundle: Bundle) -> tuple[list[str], dict[str, str]]:
    """(evidence, {job: health}) of monitoring_targets.json (every host)."""
    health: dict[str, str] = {}
    copies = bundle.json("monitoring_targets.json")
    for _, data in copies:
        for target in lookup(data, "targets")[1] or []:
            if isinstance(target, dict):
                job = str(target.get("job"))
                if health.get(job) != "down":
                    health[job] = str(target.get("health"))
    return [n for n, _ in copies], health


def check_target_up(bundle: Bundle, args: dict[str, Any], _: Results) -> Outcome:
    """monitoring_targets.json: every args.jobs target up."""
    evidence, health = _targets(bundle)
    if not evidence:
        return _missing("monitoring_targets.json")
    shown = ", ".join(f"{j} {health.get(j, 'absent')}" for j in args["jobs"])
    ok = all(health.get(j) == "up" for j in args["jobs"])
    return (PASS if ok else FAIL), evidence, shown


def _route(bundle: Bundle) -> tuple[list[str], str]:
    copies = bundle.json("environment_report.json")
    return [n for n, _ in copies[:1]], str(lookup(copies[0][1], "route")[1] or "") if copies else ""


def check_gpu_route(bundle: Bundle, args: dict[str, Any], results: Results) -> Outcome:
    """On the local_cpu route n.a.; on a GPU route monitoring_dcgm.json shows the GPUs:
    type (present), count (at least the plan's world size) or monitored (dcgm target up)."""
    evidence, route = _route(bundle)
    if not evidence:
        return _missing("environment_report.json")
    if route == "local_cpu":
        return NA, evidence, "local_cpu route: no GPU"
    copies = bundle.json("monitoring_dcgm.json")
    if not copies:
        return FAIL, evidence, "no monitoring_dcgm.json in the bundle"
    evidence += [n for n, _ in copies]
    count = sum(int(_number(lookup(d, "gpu_count")[1]) or 0) for _, d in copies)
    what = args.get("what", "type")
    if what == "monitored":
        more, health = _targets(bundle)
        up = health.get("dcgm") == "up"
        return (
            (PASS if up else FAIL),
            evidence + more,
            f"dcgm target {health.get('dcgm', 'absent')}",
        )
    if what == "count":
        plan = dict(bundle.json("model_runtime_decision.json")[:1])
        world = _number(lookup(next(iter(plan.values()), {}), "parallel.world_size")[1]) or 1
        ok = count >= world
        return (
            (PASS if ok else FAIL),
            evidence + list(plan),
            f"{count} GPU(s) for world size {world:g}",
        )
    return (PASS if count > 0 else FAIL), evidence, f"{count} GPU(s) on route {route}"


def check_monitoring_stack(bundle: Bundle, _: dict[str, Any], __: Results) -> Outcome:
    """monitoring_targets.json: the required targets healthy; monitoring_dcgm.json: DCGM
    installed where there is a GPU."""
    targets = bundle.json("monitoring_targets.json")
    if not targets:
        return _missing("monitoring_targets.json")
    dcgm = bundle.json("monitoring_dcgm.json")
    evidence = [n for n, _ in targets] + [n for n, _ in dcgm]
    healthy = all(lookup(d, "required_healthy")[1] is True for _, d in targets)
    jobs = lookup(targets[0][1], "required_targets")[1] or []
    bad_dcgm = [n for n, d in dcgm if lookup(d, "gpu_present")[1] and not lookup(d, "installed")[1]]
    detail = (
        f"required targets {', '.join(map(str, jobs))} {'healthy' if healthy else 'NOT healthy'}"
    )
    if dcgm:
        installed = any(lookup(d, "installed")[1] for _, d in dcgm)
        detail += "; DCGM " + (
            "installed" if installed else f"not installed ({lookup(dcgm[0][1], 'reason')[1]})"
        )
    ok = healthy and not bad_dcgm and bool(dcgm)
    if not dcgm:
        detail += "; no monitoring_dcgm.json"
    return (PASS if ok else FAIL), evidence, detail


def check_quantization_evaluated(bundle: Bundle, _: dict[str, Any], __: Results) -> Outcome:
    """model_runtime_decision.json: no quantisation chosen is n.a.; a quantised model must
    come with an evaluation (eval_summary.json) that passed its gate."""
    copies = bundle.json("model_runtime_decision.json")
    if not copies:
        return _missing("model_runtime_decision.json")
    name, data = copies[0]
    quant = lookup(data, "quantization")[1]
    dtype = str(lookup(data, "profile.dtype")[1] or "")
    kv = str(lookup(data, "profile.kv_cache_dtype")[1] or "auto")
    if (
        not quant
        and re.fullmatch(r"float32|float16|bfloat16|fp32|fp16|bf16|auto|", dtype)
        and kv == "auto"
    ):
        return NA, [name], f"no quantisation (dtype {dtype or '?'}, KV cache {kv})"
    evidence, total, summary = _eval_count(bundle)
    rate = _number(summary.get("gated_pass_rate"))
    ok = bool(total) and rate is not None and rate >= 1.0
    return (
        (PASS if ok else FAIL),
        [name, *evidence],
        f"quantised ({quant or dtype}, KV {kv}); {total} cases, gated pass rate {rate}",
    )


def _drift(bundle: Bundle) -> tuple[list[str], str | None, str]:
    """(evidence, problem or None, note) of drift_report.json: the host as the previous run
    of the inventory left it, key by key (run-specific keys aside)."""
    copies = bundle.json("drift_report.json")
    if not copies:
        return [], "no drift_report.json in the bundle", ""
    names = [n for n, _ in copies]
    changed: list[str] = []
    previous = None
    for _, data in copies:
        previous = previous or lookup(data, "previous_run")[1]
        if lookup(data, "identical")[1] is not True and lookup(data, "previous_run")[1]:
            diffs = lookup(data, "differences")[1] or []
            changed += [str(d.get("key")) for d in diffs if isinstance(d, dict)] or ["?"]
    if changed:
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        return names, f"host differs from run {previous}: {shown}", ""
    note = f"host identical to run {previous}" if previous else "first run: no earlier host state"
    return names, None, note


def check_reproducible(bundle: Bundle, args: dict[str, Any], results: Results) -> Outcome:
    """run_ledger.json names a clean commit; the model and runtime pinned; the environment
    report present; drift_report.json finds the host as the previous run left it."""
    ledger = bundle.json("run_ledger.json")
    if not ledger:
        return _missing("run_ledger.json")
    name, data = ledger[0]
    git = lookup(data, "invocations.0.git")[1] or {}
    problems = []
    sha = str(git.get("sha") or "")
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        problems.append(f"no commit ({git.get('error', 'not recorded')})")
    if git.get("dirty"):
        problems.append(f"uncommitted changes ({len(git.get('dirty_files') or [])} paths)")
    pinned = check_release_pinned(bundle, args, results)
    env = bundle.find("environment_report.json")
    if pinned[0] != PASS:
        problems.append(pinned[2])
    if not env:
        problems.append("no environment_report.json")
    drift, drift_problem, drift_note = _drift(bundle)
    if drift_problem:
        problems.append(drift_problem)
    evidence = [name, *pinned[1], *env[:1], *drift]
    if problems:
        return FAIL, evidence, "; ".join(problems)
    return PASS, evidence, f"commit {sha[:12]}; {pinned[2]}; {drift_note}"


CHECKS: dict[str, Callable[[Bundle, dict[str, Any], Results], Outcome]] = {
    "json": check_json,
    "text": check_text,
    "present": check_present,
    "items": check_items,
    "model_pinned": check_model_pinned,
    "release_pinned": check_release_pinned,
    "eval_harness": check_eval_harness,
    "load_test": check_load_test,
    "tls_protocols": check_tls_protocols,
    "tenant_limits": check_tenant_limits,
    "streaming": check_streaming,
    "serving_check": check_serving_check,
    "target_up": check_target_up,
    "gpu_route": check_gpu_route,
    "monitoring_stack": check_monitoring_stack,
    "quantization_evaluated": check_quantization_evaluated,
    "reproducible": check_reproducible,
}


# --- the report -------------------------------------------------------------------------


def decide(item: Item, bundle: Bundle, attestations: dict[str, Any], results: Results) -> Result:
    """One item's result."""
    base = {
        "id": item.id,
        "checklist": item.checklist,
        "section": item.section,
        "title": item.title,
    }
    if item.na:
        return Result(**base, status=NA, evidence=[], check="", detail=item.na)
    if item.attest:
        given = attestations.get(item.id)
        problems = attestation_problems(given) if given is not None else ["not attested"]
        if problems:
            detail = "not attested (evidence_attestations: owner, date, reference)"
            if given is not None:
                detail = "attestation refused: " + "; ".join(problems)
            return Result(**base, status=FAIL, evidence=[], check="attest", detail=detail)
        detail = f"attested by {given['owner']} on {given['date']}: {given['reference']}"
        return Result(**base, status=ATTESTED, evidence=[], check="attest", detail=detail)
    try:
        status, evidence, detail = CHECKS[item.check](bundle, item.args, results)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        status, evidence, detail = FAIL, [], f"the check could not read the bundle: {err}"
    if status == PASS and not evidence:  # an auditor could not re-check it
        status, detail = FAIL, f"no evidence file named ({detail})"
    return Result(
        **base, status=status, evidence=evidence, check=item.check, detail=" ".join(detail.split())
    )


def evaluate(
    checklists: list[Checklist],
    root: Path,
    hosts: Iterable[str] = (),
    attestations: dict[str, Any] | None = None,
) -> list[Result]:
    """Every item, in checklist order; `items` checks read earlier results, so items that
    combine others are decided last."""
    bundle = Bundle(root, hosts)
    items = [i for c in checklists for i in c.items]
    results: Results = {}
    for item in sorted(items, key=lambda i: i.check == "items"):
        results[item.id] = decide(item, bundle, attestations or {}, results)
    return [results[i.id] for i in items]


def counts(results: Iterable[Result], key: Callable[[Result], str]) -> dict[str, dict[str, int]]:
    """{group: {status: count}} with every status, groups in first-seen order."""
    out: dict[str, dict[str, int]] = {}
    for r in results:
        out.setdefault(key(r), dict.fromkeys(STATUSES, 0))[r.status] += 1
    return out


def report(
    checklists: list[Checklist],
    results: list[Result],
    run_id: str,
    inventory: str,
    required: list[str],
) -> dict[str, Any]:
    """readiness.json."""
    by_id = {r.id: r for r in results}
    failed = [i for i in required if by_id[i].status not in (PASS, ATTESTED)]
    return {
        "schema": SCHEMA,
        "run_id": run_id,
        "inventory": inventory,
        "checklists": [
            {"id": c.id, "title": c.title, "source": c.source, "items": len(c.items)}
            for c in checklists
        ],
        "counts": counts(results, lambda r: r.checklist),
        "section_counts": counts(results, lambda r: f"{r.checklist}: {r.section}"),
        "required": list(required),
        "required_failed": failed,
        "items": [asdict(r) for r in results],
    }


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render_markdown(data: dict[str, Any]) -> str:
    """readiness.md: the counts, then one table per checklist."""
    out = [
        f"# Readiness of run {data['run_id']} ({data['inventory']})",
        "",
        "Every item of the reference checklists (shared/reference/), decided against this bundle.",
        "A pass names the file(s) of the bundle and the check (module_utils/readiness.py) that",
        "decided it; attested items name who attested them (evidence_attestations).",
        "",
        "| checklist | pass | fail | n.a. | attested |",
        "|---|---|---|---|---|",
    ]
    out += [
        f"| {c} | " + " | ".join(str(n[s]) for s in STATUSES) + " |"
        for c, n in data["counts"].items()
    ]
    failed = data.get("required_failed") or []
    out += [
        "",
        f"Required (evidence_readiness_required): {', '.join(data['required']) or 'none'}; "
        f"not passing: {', '.join(failed) or 'none'}.",
    ]
    for checklist in data["checklists"]:
        out += [
            "",
            f"## {checklist['title']} ({checklist['id']}, {checklist['source']})",
            "",
            "| id | section | item | status | evidence | check | detail |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in data["items"]:
            if r["checklist"] != checklist["id"]:
                continue
            evidence = ", ".join(f"[{e}]({e})" for e in r["evidence"])
            status = r["status"].upper() if r["status"] == FAIL else r["status"]
            out.append(
                f"| {r['id']} | {_md(r['section'])} | {_md(r['title'])} | {status} | {evidence} | "
                f"{r['check']} | {_md(r['detail'])} |"
            )
    return "\n".join(out) + "\n"
