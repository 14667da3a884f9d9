#!/usr/bin/env python3
"""Drain probe: keep N SSE streams in flight through the gateway while teardown runs,
and prove that every stream the gateway accepted ended with `data: [DONE]`.

    drain_probe.py run --url https://127.0.0.1:8443 --ca gateway_certificate.pem \
        --model mini-gpt2-lab --out drain_test.json [--streams 8] [--max-tokens 64] \
        [--ready-file F] [--max-seconds 900] [--stagger-s 0]   (key in LLMHOST_DRAIN_PROBE_KEY)
    drain_probe.py merge --probe drain_test.json --proof shutdown_proof.json
    drain_probe.py switch --url ... --ca ... --out switch_test.json --stop-file F \
        [--streams 4] [--max-tokens 32] [--ready-file F] [--retry-interval 0.5] \
        [--stop-grace 60]

`run`: each of --streams workers streams a chat completion, reads it to the end, and
starts the next one at once, so N streams are in flight whenever the teardown begins
(but for the few milliseconds a worker takes to open its next one). --stagger-s S starts
worker i S*i seconds late, so equal-length streams do not all end at once: then at most
one worker is between two streams at any moment, and a drain never finds all of them in
that gap.
A watcher polls /healthz and notes when the gateway starts draining. A worker stops at
its first 503 (it must carry Retry-After) and the probe ends when every worker stopped
(or after --max-seconds). --ready-file is written once all N streams are producing
tokens: start the teardown after it appears. The key is read from the environment (or
--key-file) and never written. Standard library only; TLS is verified against --ca.

`switch`: the same streams across a release switch (vLLM restarting on another model
behind a draining gateway). A worker refused with 503 keeps asking /v1/models every
--retry-interval (faster than Retry-After, to time the window) until the gateway serves
again, takes the model it now lists and streams on, until --stop-file appears. A worker
still refused when the stop file appears goes on until one more stream is accepted (or
--stop-grace seconds pass): the playbook reopens the gateway just before it stops the
probe, and the refusal window closes only with an accepted stream. It reports the
streams accepted, completed and cut, the requests refused (each must carry Retry-After),
any other error, the models served in order, and the refusal window the clients saw.
Exit 0 when no stream was cut and nothing failed but the 503s.

`merge`: adds the teardown's own figures from shutdown_proof.json (when the drain file
appeared, how long the drain took, what nginx and vLLM counted in flight) and counts
the streams in flight at that moment, and what the servers' first count of the drain can
have been by the probe's own records (`first_count_bounds`: min, the streams in flight
from a little before the drain began until that count was complete; max, those in
flight at any moment of it). Exit 0 when the test passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KEY_ENV = "LLMHOST_DRAIN_PROBE_KEY"
# merge: how far a client's start or end of a stream may be from the server's (a request
# in transit through nginx, the last chunk on its way back), on one host.
MARGIN_S = 0.25
CHAT_PATH = "/v1/chat/completions"
Connect = Callable[[], http.client.HTTPConnection]


def iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- one stream ----------------------------------------------------------------------------


def read_sse(response: http.client.HTTPResponse) -> tuple[int, bool, float | None]:
    """Events read, whether `data: [DONE]` arrived, when the first content arrived."""
    events, done, first = 0, False, None
    while True:
        raw = response.readline()
        if not raw:
            break
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        events += 1
        if first is None:
            first = time.time()
    return events, done, first


def one_stream(connect: Connect, key: str, body: Mapping[str, Any], worker: int) -> dict:
    record: dict[str, Any] = {
        "worker": worker,
        "model": body.get("model"),
        "started": time.time(),
        "status": None,
    }
    conn = connect()
    try:
        conn.request(
            "POST",
            CHAT_PATH,
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        record["status"] = response.status
        if response.status != 200:
            record["retry_after"] = response.getheader("Retry-After")
            text = response.read(2000).decode("utf-8", "replace")
            try:
                record["error_code"] = json.loads(text)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                record["error_body"] = text[:200]
        else:
            record["events"], record["done"], first = read_sse(response)
            record["first_token"] = first
    except (OSError, http.client.HTTPException) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
        record["ended"] = time.time()
    return record


# --- the run -------------------------------------------------------------------------------


class Probe:
    def __init__(
        self,
        connect: Connect,
        key: str,
        body: Mapping[str, Any],
        streams: int,
        seconds: float,
        stagger_s: float = 0.0,
    ) -> None:
        self.connect, self.key, self.body = connect, key, body
        self.streams, self.deadline = streams, time.time() + seconds
        self.stagger_s = stagger_s
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.producing: set[int] = set()
        self.all_producing = threading.Event()
        self.done = threading.Event()
        self.drain_seen: float | None = None
        self.last_ok: float | None = None

    def worker(self, index: int) -> None:
        time.sleep(index * self.stagger_s)
        while time.time() < self.deadline:
            record = one_stream(self.connect, self.key, self.body, index)
            with self.lock:
                self.records.append(record)
                if record.get("first_token"):
                    self.producing.add(index)
                    if len(self.producing) == self.streams:
                        self.all_producing.set()
            if record["status"] == 503:
                if record.get("error_code") == "draining":
                    self.saw_drain(record["started"])  # refused for draining: the drain is on
                return  # the gateway is draining: this worker is done
            if record["status"] != 200:
                if self.drain_seen is not None:
                    return  # the gateway went away after the drain began
                time.sleep(0.5)

    def saw_drain(self, moment: float) -> None:
        """Note the earliest moment the drain was seen (the watcher or a refused stream:
        when every stream is refused between two polls, the watcher never sees it)."""
        with self.lock:
            if self.drain_seen is None or moment < self.drain_seen:
                self.drain_seen = moment

    def watch(self, interval: float) -> None:
        """Poll /healthz until the gateway says it is draining."""
        while not self.done.is_set() and time.time() < self.deadline:
            status, text = 0, ""
            conn = self.connect()
            try:
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                status, text = response.status, response.read(200).decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            now = time.time()
            if "draining" in text:
                self.saw_drain(now)
                return
            if status == 200:
                self.last_ok = now
            time.sleep(interval)

    def run(self, ready_file: Path | None, interval: float) -> None:
        watcher = threading.Thread(target=self.watch, args=(interval,), daemon=True)
        workers = [
            threading.Thread(target=self.worker, args=(i,), daemon=True)
            for i in range(self.streams)
        ]
        watcher.start()
        for thread in workers:
            thread.start()
        if ready_file is not None:
            while not self.all_producing.wait(0.5):
                if time.time() > self.deadline or not any(t.is_alive() for t in workers):
                    break
            if self.all_producing.is_set():
                ready_file.write_text(f"{iso(time.time())}\n", encoding="utf-8")
        for thread in workers:
            thread.join(max(0.0, self.deadline - time.time()) + 5)
        self.done.set()
        watcher.join(5)


def served_model(connect: Connect, key: str) -> str | None:
    """The first model the gateway lists, or None while it refuses or fails."""
    conn = connect()
    try:
        conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
        response = conn.getresponse()
        text = response.read(20000).decode("utf-8", "replace")
        if response.status != 200:
            return None
        return str(json.loads(text)["data"][0]["id"])
    except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError, TypeError):
        return None
    finally:
        conn.close()


class SwitchProbe:
    """Streams that live through a release switch: refused while the gateway drains, then
    on to whatever model it serves next, until the stop file appears."""

    def __init__(
        self,
        connect: Connect,
        key: str,
        body: Mapping[str, Any],
        streams: int,
        seconds: float,
        stop_file: Path,
        retry_interval: float,
        pause: float = 0.0,
        stop_grace: float = 60.0,
    ) -> None:
        self.connect, self.key, self.body = connect, key, dict(body)
        self.streams, self.deadline = streams, time.time() + seconds
        self.stop_file, self.retry_interval, self.pause = stop_file, retry_interval, pause
        self.stop_grace = stop_grace
        self.stop_seen: float | None = None
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.producing: set[int] = set()
        self.all_producing = threading.Event()

    def going_on(self, refused: bool = False) -> bool:
        """Before the stop file: yes. After it: only for a worker still refused (its
        window is open), and only for --stop-grace seconds after the file was seen."""
        now = time.time()
        if now >= self.deadline:
            return False
        if not self.stop_file.exists():
            return True
        with self.lock:
            if self.stop_seen is None:
                self.stop_seen = now
            return refused and now < self.stop_seen + self.stop_grace

    def running(self) -> bool:
        return self.going_on(refused=False)

    def wait_for_service(self) -> None:
        while self.going_on(refused=True):
            model = served_model(self.connect, self.key)
            if model is not None:
                with self.lock:
                    self.body["model"] = model
                return
            time.sleep(self.retry_interval)

    def worker(self, index: int) -> None:
        refused = False  # refused since this worker's last accepted stream
        while self.going_on(refused):
            with self.lock:
                body = dict(self.body)
            record = one_stream(self.connect, self.key, body, index)
            with self.lock:
                self.records.append(record)
                if record.get("first_token"):
                    self.producing.add(index)
                    if len(self.producing) == self.streams:
                        self.all_producing.set()
            if record["status"] != 200:
                refused = True
                time.sleep(self.retry_interval)
                self.wait_for_service()
                continue
            refused = False
            if self.pause:
                time.sleep(self.pause)  # a tiny model streams in ms: leave the CPU some air

    def run(self, ready_file: Path | None) -> None:
        workers = [
            threading.Thread(target=self.worker, args=(i,), daemon=True)
            for i in range(self.streams)
        ]
        for thread in workers:
            thread.start()
        if ready_file is not None:
            while not self.all_producing.wait(0.5):
                if not self.running() or not any(t.is_alive() for t in workers):
                    break
            if self.all_producing.is_set():
                ready_file.write_text(f"{iso(time.time())}\n", encoding="utf-8")
        for thread in workers:
            thread.join(max(0.0, self.deadline - time.time()) + 130)


# --- analysis (pure) -----------------------------------------------------------------------


def refusal_windows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each run of 503s in start order, up to the next accepted request."""
    windows: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for record in sorted(records, key=lambda r: r["started"]):
        if record["status"] == 503:
            if current is None:
                current = {"first_refused": record["started"], "refused": 0}
            current["refused"] += 1
            current["last_refused"] = record["started"]
        elif record["status"] == 200 and current is not None:
            current["served_again"] = record["started"]
            windows.append(current)
            current = None
    if current is not None:
        windows.append(current)
    return [
        {
            "first_refused_at": iso(w["first_refused"]),
            "served_again_at": iso(w["served_again"]) if "served_again" in w else None,
            "refused_requests": w["refused"],
            "observed_s": (
                round(w["served_again"] - w["first_refused"], 3) if "served_again" in w else None
            ),
        }
        for w in windows
    ]


def analyse_switch(records: Sequence[Mapping[str, Any]], streams: int) -> dict[str, Any]:
    accepted = [r for r in records if r["status"] == 200]
    truncated = [r for r in accepted if not r.get("done")]
    refused = [r for r in records if r["status"] == 503]
    errors = [r for r in records if r["status"] not in (200, 503)]
    models: list[str] = []
    for record in sorted(accepted, key=lambda r: r["started"]):
        if not models or models[-1] != record.get("model"):
            models.append(str(record.get("model")))
    windows = refusal_windows(records)
    result: dict[str, Any] = {
        "streams_target": streams,
        "requests": len(records),
        "streams": {
            "accepted": len(accepted),
            "completed_with_done": len(accepted) - len(truncated),
            "truncated": len(truncated),
        },
        "refused": {
            "count": len(refused),
            "with_retry_after": sum(1 for r in refused if r.get("retry_after")),
            "retry_after_values": sorted({str(r.get("retry_after")) for r in refused}),
            "error_codes": sorted({str(r.get("error_code")) for r in refused}),
        },
        "failed": len(errors),
        "errors": [_compact(r) for r in errors][:20],
        "models_in_order": models,
        "refusal_windows": windows,
    }
    result["passed"] = bool(
        accepted
        and not truncated
        and not errors
        and all(r.get("retry_after") for r in refused)
        and all(w["served_again_at"] for w in windows)
    )
    return result


def in_flight_at(records: Sequence[Mapping[str, Any]], moment: float) -> list[Mapping[str, Any]]:
    return [r for r in records if r["status"] == 200 and r["started"] < moment < r["ended"]]


def analyse(
    records: Sequence[Mapping[str, Any]],
    streams: int,
    drain_seen: float | None,
    last_ok: float | None,
) -> dict[str, Any]:
    accepted = [r for r in records if r["status"] == 200]
    truncated = [r for r in accepted if not r.get("done")]
    refused = [r for r in records if r["status"] == 503]
    other = [r for r in records if r["status"] not in (200, 503)]
    after_drain = [r for r in other if drain_seen is not None and r["started"] >= drain_seen]
    errors = [r for r in other if r not in after_drain]
    flying = in_flight_at(accepted, drain_seen) if drain_seen is not None else []
    result: dict[str, Any] = {
        "streams_target": streams,
        "drain_observed": drain_seen is not None,
        "drain_seen_at": iso(drain_seen) if drain_seen else None,
        "last_healthy_at": iso(last_ok) if last_ok else None,
        "streams": {
            "accepted": len(accepted),
            "completed_with_done": len(accepted) - len(truncated),
            "truncated": len(truncated),
        },
        "in_flight_when_drain_seen": len(flying),
        "in_flight_when_drain_seen_completed": sum(1 for r in flying if r.get("done")),
        "last_stream_ended_after_drain_s": (
            round(max(r["ended"] for r in flying) - drain_seen, 3)
            if flying and drain_seen
            else None
        ),
        "refused_while_draining": {
            "count": len(refused),
            "with_retry_after": sum(1 for r in refused if r.get("retry_after")),
            "retry_after_values": sorted({str(r.get("retry_after")) for r in refused}),
            "error_codes": sorted({str(r.get("error_code")) for r in refused}),
        },
        "gateway_gone_after_drain": len(after_drain),
        "errors": [_compact(r) for r in errors][:20],
    }
    result["passed"] = bool(
        drain_seen is not None
        and not truncated
        and not errors
        and flying
        and all(r.get("retry_after") for r in refused)
    )
    return result


def _compact(record: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in ("started", "ended", "first_token")}
    out["started"], out["ended"] = iso(record["started"]), iso(record["ended"])
    return out


def merge(probe: Mapping[str, Any], proof: Mapping[str, Any]) -> dict[str, Any]:
    """The probe's result plus the teardown's own drain figures and the streams in flight
    at the moment the drain file appeared (clocks of one host, or NTP-synced hosts)."""
    out = dict(probe)
    drain = proof.get("drain") or {}
    if not drain:
        out["teardown"] = {"drain": None, "note": "the proof has no drain: nothing was running"}
        out["passed"] = False
        return out
    start = epoch(drain["started_at"])
    records = [
        {**r, "started": epoch(r["started"]), "ended": epoch(r["ended"])} for r in probe["records"]
    ]
    flying = in_flight_at(records, start)
    # The teardown's first count (nginx, then each vLLM) was complete `first` s after the
    # drain began (timeline[0].t_s; proofs without it: 0). A stream in flight from
    # MARGIN_S before the drain (its request had reached the server) until MARGIN_S after
    # that count (the server had not finished it) is in the count for certain; one in
    # flight at any moment of that window may be.
    first = float(((drain.get("timeline") or [{}])[0]).get("t_s") or 0.0)
    before, after = start - MARGIN_S, start + first + MARGIN_S
    accepted = [r for r in records if r["status"] == 200]
    through = [r for r in accepted if r["started"] < before and r["ended"] > after]
    around = [r for r in accepted if r["started"] < after and r["ended"] > before]
    out["teardown"] = {
        "drain_started_at": drain["started_at"],
        "drain_duration_s": drain["duration_s"],
        "drain_completed": drain["completed"],
        "server_in_flight_at_drain_start": drain["in_flight_at_start"],
        "first_count_after_s": first,
        "proof_passed": proof.get("passed"),
    }
    out["in_flight_at_drain_start"] = len(flying)
    out["in_flight_at_drain_start_completed"] = sum(1 for r in flying if r.get("done"))
    out["first_count_bounds"] = {"min": len(through), "max": len(around)}
    out["passed"] = bool(
        probe.get("passed") and drain["completed"] and flying and all(r.get("done") for r in flying)
    )
    return out


# --- command line --------------------------------------------------------------------------


def connector(url: str, ca: str, timeout: float) -> Connect:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca or None)
        return lambda: http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    return lambda: http.client.HTTPConnection(host, port, timeout=timeout)


def cmd_run(args: argparse.Namespace) -> int:
    if args.stagger_s < 0 or args.streams < 1:
        print("drain_probe: --stagger-s must be 0 or more, --streams 1 or more", file=sys.stderr)
        return 2
    key = os.environ.get(KEY_ENV, "")
    if args.key_file:
        key = Path(args.key_file).read_text(encoding="utf-8").strip()
    if not key:
        print(f"drain_probe: no key: set {KEY_ENV} or --key-file", file=sys.stderr)
        return 2
    connect = connector(args.url, args.ca, args.timeout)
    model = args.model or served_model(connect, key)
    if not model:
        print(f"drain_probe: {args.url} lists no model (is it serving?)", file=sys.stderr)
        return 2
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Tell a long story."}],
        "max_tokens": args.max_tokens,
        "min_tokens": args.max_tokens,  # vLLM: no early stop, so every stream is as long
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
    }
    probe = Probe(connect, key, body, args.streams, args.max_seconds, args.stagger_s)
    started = time.time()
    probe.run(args.ready_file, args.healthz_interval)
    result = {
        "url": args.url,
        "model": model,
        "max_tokens": args.max_tokens,
        "started_at": iso(started),
        "ended_at": iso(time.time()),
        **analyse(probe.records, args.streams, probe.drain_seen, probe.last_ok),
        "records": [_compact(r) for r in probe.records],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("records", "errors")}))
    return 0 if result["passed"] else 1


def cmd_switch(args: argparse.Namespace) -> int:
    key = os.environ.get(KEY_ENV, "")
    if args.key_file:
        key = Path(args.key_file).read_text(encoding="utf-8").strip()
    if not key:
        print(f"drain_probe: no key: set {KEY_ENV} or --key-file", file=sys.stderr)
        return 2
    connect = connector(args.url, args.ca, args.timeout)
    model = args.model or served_model(connect, key)
    if not model:
        print(f"drain_probe: {args.url} lists no model (is it serving?)", file=sys.stderr)
        return 2
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Tell a long story."}],
        "max_tokens": args.max_tokens,
        "min_tokens": args.max_tokens,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
    }
    probe = SwitchProbe(
        connect,
        key,
        body,
        args.streams,
        args.max_seconds,
        args.stop_file,
        args.retry_interval,
        args.pause,
        args.stop_grace,
    )
    started = time.time()
    probe.run(args.ready_file)
    result = {
        "url": args.url,
        "max_tokens": args.max_tokens,
        "started_at": iso(started),
        "ended_at": iso(time.time()),
        **analyse_switch(probe.records, args.streams),
        "records": [_compact(r) for r in probe.records],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("records", "errors")}))
    return 0 if result["passed"] else 1


def cmd_merge(args: argparse.Namespace) -> int:
    probe = json.loads(args.probe.read_text(encoding="utf-8"))
    proof = json.loads(args.proof.read_text(encoding="utf-8"))
    merged = merge(probe, proof)
    args.probe.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in merged.items() if k not in ("records", "errors")}))
    return 0 if merged["passed"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="keep streams in flight until the gateway drains")
    run.add_argument("--url", required=True, help="gateway base URL, e.g. https://127.0.0.1:8443")
    run.add_argument("--ca", default="", help="certificate to verify the gateway's TLS with")
    run.add_argument("--model", default="", help="model to ask for (default: the first listed)")
    run.add_argument("--key-file", default="", help=f"tenant key file (else ${KEY_ENV})")
    run.add_argument("--streams", type=int, default=8)
    run.add_argument("--max-tokens", type=int, default=64)
    run.add_argument("--max-seconds", type=float, default=900)
    run.add_argument("--timeout", type=float, default=120, help="socket timeout per read")
    run.add_argument("--healthz-interval", type=float, default=0.2)
    run.add_argument(
        "--stagger-s", type=float, default=0.0, help="seconds between the workers' first streams"
    )
    run.add_argument("--ready-file", type=Path)
    run.add_argument("--out", type=Path, required=True)
    run.set_defaults(func=cmd_run)
    swi = sub.add_parser("switch", help="keep streams going across a release switch")
    swi.add_argument("--url", required=True, help="gateway base URL, e.g. https://127.0.0.1:8443")
    swi.add_argument("--ca", default="", help="certificate to verify the gateway's TLS with")
    swi.add_argument("--model", default="", help="model to start with (default: the first listed)")
    swi.add_argument("--key-file", default="", help=f"tenant key file (else ${KEY_ENV})")
    swi.add_argument("--streams", type=int, default=4)
    swi.add_argument("--max-tokens", type=int, default=32)
    swi.add_argument("--max-seconds", type=float, default=900)
    swi.add_argument("--timeout", type=float, default=120, help="socket timeout per read")
    swi.add_argument("--retry-interval", type=float, default=0.5)
    swi.add_argument("--pause", type=float, default=0.2, help="seconds between a worker's streams")
    swi.add_argument("--stop-file", type=Path, required=True, help="the probe ends when it exists")
    swi.add_argument(
        "--stop-grace",
        type=float,
        default=60,
        help="seconds a worker still refused goes on after the stop file, for one accepted stream",
    )
    swi.add_argument("--ready-file", type=Path)
    swi.add_argument("--out", type=Path, required=True)
    swi.set_defaults(func=cmd_switch)
    mrg = sub.add_parser("merge", help="add the teardown's figures from shutdown_proof.json")
    mrg.add_argument("--probe", type=Path, required=True)
    mrg.add_argument("--proof", type=Path, required=True)
    mrg.set_defaults(func=cmd_merge)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
