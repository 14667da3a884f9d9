#!/usr/bin/python3
"""The lab's alert sink: an Alertmanager webhook receiver that records notifications.

`serve` listens on a loopback address and appends each POSTed notification, with the time
it arrived, as one JSON line to a file (the file is capped; past the cap a POST gets 507 and
Alertmanager retries later). `summary` prints, as JSON, one row per alert per notification
({alertname, receiver, status, received_at}): what the monitoring role's verify phase waits
for and records in alert_delivery.json. Python's standard library only.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 1 << 20  # Alertmanager's notifications are a few KiB
MAX_FILE = 16 << 20


class SinkServer(HTTPServer):
    """One request at a time: appends never interleave."""

    def __init__(self, address: tuple[str, int], out: Path, max_file: int = MAX_FILE) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.out = out
        self.max_file = max_file
        super().__init__(address, SinkHandler)

    def record(self, payload: dict[str, Any]) -> bool:
        """Append one notification; False when the file is full."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        line = json.dumps({"received_at": now, "payload": payload}, sort_keys=True) + "\n"
        size = self.out.stat().st_size if self.out.exists() else 0
        if size + len(line.encode("utf-8")) > self.max_file:
            return False
        with self.out.open("a", encoding="utf-8") as f:
            f.write(line)
        return True


class SinkHandler(BaseHTTPRequestHandler):
    server: SinkServer
    timeout = 10  # a stalled client cannot hold the (single) handler
    server_version = "llmhost-alert-sink"

    def _reply(self, status: int, text: str) -> None:
        body = (text + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, "ok")
        else:
            self._reply(404, "not found")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length <= 0 or length > MAX_BODY:
            self._reply(413 if length > MAX_BODY else 400, "a JSON body of at most 1 MiB")
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self._reply(400, "not JSON")
            return
        if not isinstance(payload, dict):
            self._reply(400, "not a JSON object")
            return
        if self.server.record(payload):
            self._reply(200, "recorded")
        else:
            self._reply(507, "the sink's file is full")

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def summary(path: Path) -> list[dict[str, str]]:
    """One row per alert per recorded notification; lines that do not parse are skipped."""
    rows: list[dict[str, str]] = []
    if not path.exists():
        return rows
    for line in path.read_text("utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("payload"), dict):
            continue
        payload = entry["payload"]
        for alert in payload.get("alerts") or []:
            if not isinstance(alert, dict):
                continue
            labels = alert.get("labels") if isinstance(alert.get("labels"), dict) else {}
            rows.append(
                {
                    "alertname": str(labels.get("alertname", "")),
                    "receiver": str(payload.get("receiver", "")),
                    "status": str(alert.get("status", "")),
                    "received_at": str(entry.get("received_at", "")),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="receive notifications")
    serve.add_argument("--address", default="127.0.0.1")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--file", type=Path, required=True)
    serve.add_argument("--max-file-bytes", type=int, default=MAX_FILE)
    show = sub.add_parser("summary", help="print the recorded alerts as JSON")
    show.add_argument("--file", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "summary":
        print(json.dumps({"notifications": summary(args.file)}, sort_keys=True))
        return 0
    server = SinkServer((args.address, args.port), args.file, args.max_file_bytes)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
