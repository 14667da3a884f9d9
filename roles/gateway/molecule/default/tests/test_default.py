"""testinfra checks of the gateway role: real nginx, real clients (curl, openssl, the
official openai client), two stdlib test backends standing in for vLLM.

Traffic goes to 127.0.0.1: inside the container through docker exec, and from the
control node to the port Molecule publishes on 127.0.0.1:$LLMHOST_MOL_HTTPS_PORT
(molecule/base.yml).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import threading
import time
from pathlib import Path

import openai
import pytest

BASE = "https://127.0.0.1"
PUBLISHED = f"https://127.0.0.1:{os.environ['LLMHOST_MOL_HTTPS_PORT']}/v1"
CA = "/etc/nginx/llmhost/tls/gateway.crt"
KEYS = {
    "alice": "alice-key-0123456789abcdef0123456789abcdef",
    "bob": "bob-key-0123456789abcdef",
    "carol": "carol-key-0123456789abcdef",
}
UPSTREAM_KEY = "upstream-test-key-0123456789"
EVIDENCE = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
CHAT = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
# The scenario's values (its molecule.yml): what the checks below expect nginx to enforce.
WORKER_CONNECTIONS = 3072
HEADER_TIMEOUT_S = 3
BODY_TIMEOUT_S = 3
HEALTHZ_CACHE_S = 2
FAIL_TIMEOUT_S = 10  # the role's default gateway_upstream_fail_timeout_s
LOG_RETENTION_DAYS = 7
LOG_MAX_SIZE = "50M"
ACCESS_LOG = "/var/log/nginx/llmhost-gateway.access.log"
ERROR_LOG = "/var/log/nginx/llmhost-gateway.error.log"
UPSTREAM_PORTS = (8001, 8002)  # the two test backends (prepare.yml)

# Raw clients, run inside the container (stdlib only, TLS to 127.0.0.1:443): one mode per
# check, each printing one JSON object.
CLIENTS = r"""
import http.client, json, select, socket, ssl, sys, threading, time

CA = "/etc/nginx/llmhost/tls/gateway.crt"
CTX = ssl.create_default_context(cafile=CA)


def tls():
    raw = socket.create_connection(("127.0.0.1", 443), timeout=30)
    return CTX.wrap_socket(raw, server_hostname="127.0.0.1")


def closed(sock, wait):
    # True once the server has closed the connection (EOF or reset, after an answer or
    # not). Readable without data (a TLS 1.3 session ticket) is not closed.
    if not select.select([sock], [], [], wait)[0] and not sock.pending():
        return False
    sock.settimeout(0.5)
    try:
        while sock.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(30)


def get(path, key=None):
    conn = http.client.HTTPSConnection("127.0.0.1", 443, context=CTX, timeout=30)
    t0 = time.monotonic()
    conn.request("GET", path, headers={"Authorization": "Bearer " + key} if key else {})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status, time.monotonic() - t0


def burst(n):
    # n connections made first, then n requests released at once.
    conns = [http.client.HTTPSConnection("127.0.0.1", 443, context=CTX) for _ in range(n)]
    for conn in conns:
        conn.connect()
    gate, statuses = threading.Barrier(n), []

    def one(conn):
        gate.wait()
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        statuses.append(resp.status)

    threads = [threading.Thread(target=one, args=(c,)) for c in conns]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"statuses": sorted(statuses), "seconds": round(time.monotonic() - t0, 3)}


def steady(rate, seconds):
    statuses, t0 = [], time.monotonic()
    while time.monotonic() - t0 < seconds:
        statuses.append(get("/healthz")[0])
        time.sleep(1 / rate)
    return {"statuses": statuses, "seconds": round(time.monotonic() - t0, 3)}


def until(status, limit):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if get("/healthz")[0] == status:
            return {"seconds": round(time.monotonic() - t0, 3)}
        time.sleep(0.2)
    return {"seconds": None}


def slow_header(out):
    # One byte of the request headers per second: never completes.
    head = b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow-header\r\n\r\n"
    t0 = time.monotonic()
    sock, sent = tls(), 0
    try:
        while sent < len(head):
            sock.sendall(head[sent:sent + 1])
            sent += 1
            if closed(sock, 1.0):
                break
        else:
            out.append({"cut_s": None, "bytes": sent})
            return
    except OSError:
        pass
    out.append({"cut_s": round(time.monotonic() - t0, 3), "bytes": sent, "of": len(head)})


def slow_body(key, rid, trickle, out):
    # Headers at once, then one body byte per second for `trickle` bytes, then nothing.
    body = b'{"model": "test-model", "messages": []}'.ljust(64)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nX-Request-Id: {rid}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = tls()
    sock.sendall(head)
    alive = True
    for i in range(trickle):
        time.sleep(1.0)
        sock.sendall(body[i:i + 1])
        alive = alive and not closed(sock, 0)
    t0 = time.monotonic()
    while not closed(sock, 0.25):
        if time.monotonic() - t0 > 20:
            out.append({"alive_while_trickling": alive, "stall_cut_s": None})
            return
    out.append({"alive_while_trickling": alive, "stall_cut_s": round(time.monotonic() - t0, 3)})


def slow(key, headers, bodies, trickle, tag):
    hdr, bod, threads = [], [], []
    for _ in range(headers):
        threads.append(threading.Thread(target=slow_header, args=(hdr,)))
    for i in range(bodies):
        threads.append(threading.Thread(target=slow_body, args=(key, f"{tag}-{i}", trickle, bod)))
    for t in threads:
        t.start()
    time.sleep(1.5)  # every slow client connected and part-way through
    normal = [get("/v1/models", key) for _ in range(3)]
    for t in threads:
        t.join()
    return {"headers": hdr, "bodies": bod, "normal": [[s, round(d, 3)] for s, d in normal]}


mode, args = sys.argv[1], sys.argv[2:]
if mode == "burst":
    print(json.dumps(burst(int(args[0]))))
elif mode == "steady":
    print(json.dumps(steady(float(args[0]), float(args[1]))))
elif mode == "until":
    print(json.dumps(until(int(args[0]), float(args[1]))))
elif mode == "slow":
    print(json.dumps(slow(args[0], int(args[1]), int(args[2]), int(args[3]), args[4])))
"""


def clients(host, *args: str) -> dict:
    """Run a mode of CLIENTS inside the container; its JSON answer."""
    # base64: the script reaches the container byte for byte, whatever quotes it holds.
    script = base64.b64encode(CLIENTS.encode()).decode()
    host.run_test(f"echo {script} | base64 -d > /root/llmhost_clients.py")
    return json.loads(host.check_output(shlex.join(["python3", "/root/llmhost_clients.py", *args])))


def upstream_journal(host) -> str:
    """The test backends' journal, holding every line they printed before this call.

    A backend prints its line before it answers, but journald reads it later, the later
    the busier the machine: a journal read right after an answer may lack its line. Each
    running backend is sent one marker request of its own (straight, on loopback) and the
    journal is read until every marker is in it. A backend's lines reach the journal in
    the order it printed them, so whatever it printed before its marker is there too.
    """
    tag = f"journal-mark-{time.time_ns()}"
    marks = []
    for port in UPSTREAM_PORTS:
        mark = f"{tag}-{port}"
        sent = host.run(
            f"curl -sS -o /dev/null --max-time 10 -H 'X-Request-Id: {mark}' "
            f"http://127.0.0.1:{port}/llmhost-journal-mark"
        )
        if sent.rc == 0:  # a stopped backend (curl: connection refused) prints no more
            marks.append(mark)
    deadline = time.monotonic() + 30
    while True:
        out = host.check_output("journalctl -u 'llmhost-test-upstream@*' --no-pager -o cat")
        if all(f"request_id={mark} " in out for mark in marks):
            return out
        assert time.monotonic() < deadline, f"markers {marks} never reached the journal"
        time.sleep(0.2)


def health_hits(host) -> int:
    """/health requests the test backends have answered so far (their journal)."""
    return sum(1 for line in upstream_journal(host).splitlines() if '"GET /health ' in line)


def curl(
    host,
    path: str,
    *,
    key: str | None = None,
    body: dict | str | None = None,
    method: str | None = None,
    headers: dict[str, str] | None = None,
    base: str = BASE,
) -> tuple[int, dict[str, str], str]:
    """curl inside the container: (status, lower-cased headers, body)."""
    args = [
        "curl",
        "-sS",
        "--cacert",
        CA,
        "-D",
        "/root/h.out",
        "-o",
        "/root/b.out",
        "-w",
        "%{http_code}",
        "--max-time",
        "30",
    ]
    if method:
        args += ["-X", method]
    if key:
        args += ["-H", f"Authorization: Bearer {key}"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if body is not None:
        data = body if isinstance(body, str) else json.dumps(body)
        host.run(f"cat > /root/req.json <<'EOF'\n{data}\nEOF")
        args += ["-H", "Content-Type: application/json", "--data-binary", "@/root/req.json"]
    status = int(host.check_output(shlex.join([*args, base + path])))
    raw = host.file("/root/h.out").content_string.splitlines()
    hdrs = {}
    for line in raw[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            hdrs[name.strip().lower()] = value.strip()
    return status, hdrs, host.file("/root/b.out").content_string


def test_nginx_runs_hardened_as_a_dedicated_user(host) -> None:
    assert host.service("nginx").is_running
    props = host.check_output(
        "systemctl show nginx -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp"
    )
    for expected in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ):
        assert expected in props
    workers = host.check_output("ps -o user= -C nginx | sort | uniq -c")
    assert "llmhost-gw" in workers and "www-data" not in workers


def _taking_workers(host) -> set[str]:
    """The nginx master's workers that take new connections (not shutting down)."""
    master = host.check_output("cat /run/nginx.pid")
    lines = host.check_output(f"ps -o pid=,args= --ppid {master}").splitlines()
    return {ln.split()[0] for ln in lines if ln.strip().endswith("nginx: worker process")}


def test_a_reload_returns_once_the_new_workers_serve(host) -> None:
    """`systemctl reload nginx` (the drop-in's ExecReload) returns only when no worker from
    before the reload takes connections: a rotation holds for the next request."""
    for _ in range(3):
        before = _taking_workers(host)
        assert before
        host.run_expect([0], "systemctl reload nginx")
        after = _taking_workers(host)
        assert after and not (after & before), f"before {before}, right after {after}"


def test_workers_sized_for_many_clients(host) -> None:
    """worker_connections and the open-file limit, as nginx and the kernel see them."""
    conf = host.check_output("nginx -T 2>/dev/null")
    assert re.search(rf"^\s*worker_connections {WORKER_CONNECTIONS};", conf, re.M)
    assert re.search(rf"^worker_rlimit_nofile {2 * WORKER_CONNECTIONS};", conf, re.M)
    pids = host.check_output("pgrep -f '^nginx: (master|worker) process'").split()
    assert len(pids) >= 2, pids
    for pid in pids:
        limits = host.file(f"/proc/{pid}/limits").content_string
        row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert row.split()[3:5] == [str(2 * WORKER_CONNECTIONS)] * 2, (pid, row)


def test_listeners(host) -> None:
    assert host.socket("tcp://0.0.0.0:443").is_listening
    assert host.socket("tcp://0.0.0.0:80").is_listening  # the redirect
    assert host.socket("tcp://127.0.0.1:8081").is_listening
    assert not host.socket("tcp://0.0.0.0:8081").is_listening
    for port in (8001, 8002):
        assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_secrets_are_root_only(host) -> None:
    for path in ("/etc/nginx/llmhost/secrets.conf", "/etc/nginx/llmhost/tls/gateway.key"):
        f = host.file(path)
        assert f.user == "root" and f.mode == 0o600, path
    leftovers = host.check_output("find /etc/nginx -name '*~' | wc -l")
    assert leftovers == "0", "backups of replaced config files (old keys) are left"


@pytest.mark.parametrize(
    ("flag", "accepted"),
    [
        ("-tls1", False),
        ("-tls1_1", False),
        ("-tls1_2", True),
        ("-tls1_3", True),
    ],
)
def test_tls_versions(host, flag: str, accepted: bool) -> None:
    # SECLEVEL=0 lets the client offer old versions: the refusal must be the server's.
    cmd = (
        f"echo | timeout 10 openssl s_client -connect 127.0.0.1:443 {flag} "
        f"-cipher 'DEFAULT:@SECLEVEL=0' -servername localhost -CAfile {CA} 2>&1"
    )
    out = host.run(cmd).stdout
    if accepted:
        assert "Verify return code: 0 (ok)" in out, out
    else:
        refused = ("Cipher is (NONE)", "alert protocol version", "no protocols")
        assert any(sign in out for sign in refused), out


def test_no_session_tickets(host) -> None:
    cmd = f"echo | timeout 10 openssl s_client -connect 127.0.0.1:443 -tls1_2 -CAfile {CA} 2>&1"
    out = host.run(cmd).stdout
    assert "TLS session ticket:" not in out


def test_http_redirects_to_https(host) -> None:
    status, hdrs, _ = curl(host, "/v1/models", base="http://127.0.0.1")
    assert status == 301
    assert hdrs["location"] == "https://127.0.0.1/v1/models"


def test_healthz_reports_upstream(host) -> None:
    status, hdrs, body = curl(host, "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert hdrs["x-request-id"]


def test_healthz_shares_one_backend_check(host) -> None:
    """50 anonymous /healthz at once (within the per-address burst), then a steady 5/s:
    the backends see about one /health per gateway_healthz_cache_s, not one per request."""
    time.sleep(HEALTHZ_CACHE_S + 3)  # the cached answer expired, the per-address bucket drained
    before = health_hits(host)
    burst = clients(host, "burst", "50")
    burst_hits = health_hits(host) - before
    before = health_hits(host)
    steady = clients(host, "steady", "5", "6")
    steady_hits = health_hits(host) - before
    print(
        f"/healthz burst: 50 requests in {burst['seconds']} s -> {burst_hits} backend /health; "
        f"steady: {len(steady['statuses'])} requests in {steady['seconds']} s -> {steady_hits}"
    )
    assert burst["statuses"] == [200] * 50, burst
    assert 1 <= burst_hits <= 2, burst_hits
    assert set(steady["statuses"]) == {200}, steady
    assert 1 <= steady_hits <= steady["seconds"] / HEALTHZ_CACHE_S + 2, steady_hits


def test_healthz_follows_the_backends_within_seconds(host) -> None:
    """Backends stopped: upstream_down within the cache window; started: ok again."""
    host.run("systemctl stop 'llmhost-test-upstream@*'")
    try:
        down = clients(host, "until", "503", "20")
        status, _, body = curl(host, "/healthz")
    finally:
        host.run("systemctl start llmhost-test-upstream@8001 llmhost-test-upstream@8002")
    restarted = time.monotonic()
    up = clients(host, "until", "200", "30")
    print(f"/healthz: upstream_down {down['seconds']} s after the stop, ok {up['seconds']} s after")
    assert status == 503 and json.loads(body) == {"status": "upstream_down"}
    assert down["seconds"] is not None and down["seconds"] <= HEALTHZ_CACHE_S + 2, down
    assert up["seconds"] is not None and up["seconds"] <= HEALTHZ_CACHE_S + 2, up
    wait_until_served(host, restarted)


@pytest.mark.parametrize("key", [None, "wrong-key-0123456789abcdef", UPSTREAM_KEY])
def test_unknown_or_missing_key_is_401(host, key: str | None) -> None:
    status, hdrs, body = curl(host, "/v1/chat/completions", key=key, body=CHAT)
    assert status == 401
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
    assert hdrs["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/tokenize",
        "/pause",
        "/load",
        "/invocations",
        "/version",
        "/docs",
        "/health",
        "/v1/chat/completions/x",
    ],
)
def test_everything_else_is_404(host, path: str) -> None:
    status, _, body = curl(host, path, key=KEYS["alice"])
    assert status == 404
    assert json.loads(body)["error"]["code"] == "not_found"


ALLOWED = {"/v1/chat/completions", "/v1/completions", "/v1/models"}
# Raw request targets, sent as they are (curl --request-target): dot segments, encoded
# dot segments and slashes, double slashes, prefixes of vLLM's mounted apps.
RAW_TARGETS = [
    "/metrics/%2e%2e/v1/models",
    "/metrics/../v1/models",
    "/v1/models/../../metrics",
    "/v1/../metrics",
    "/v1/%2e%2e/metrics",
    "//v1/models",
    "/v1//models",
    "/./v1/models",
    "/v1/models/.",
    "/v1/models%2f..%2f..%2fmetrics",
    "/v1/models%2F..%2F..%2Fmetrics",
    "/%76%31/models",
    "/v1/models?x=/../metrics",
    "/metrics?/v1/models",
    "/metrics/",
    "/docs/v1/models",
    "/v1/models/",
    "/v1/models;/../../metrics",
    "/v1/models%00",
    "/v1/models#/../metrics",
]


@pytest.mark.parametrize("target", RAW_TARGETS)
def test_raw_paths_reach_nothing_but_the_allowlist(host, target: str) -> None:
    """Whatever the request line says, vLLM receives an allowlisted path or nothing."""
    rid = f"raw-{int(time.time() * 1000)}-{abs(hash(target)) % 10**6}"
    cmd = [
        "curl", "-sS", "--path-as-is", "--cacert", CA, "-o", "/root/raw.out", "-w", "%{http_code}",
        "--max-time", "30", "-H", f"Authorization: Bearer {KEYS['alice']}",
        "-H", f"X-Request-Id: {rid}", "--request-target", target, f"{BASE}/",
    ]  # fmt: skip
    status = int(host.check_output(shlex.join(cmd)))
    body = host.file("/root/raw.out").content_string
    seen = [
        line.split('"')[1].split(" ")[1]
        for line in upstream_journal(host).splitlines()
        if f"request_id={rid} " in line and '"' in line
    ]
    assert all(path in ALLOWED for path in seen), f"{target} reached {seen} upstream"
    if seen:  # normalised onto an allowed endpoint: the backend's own answer
        assert status == 200, (target, status, body)
        assert json.loads(body)["data"][0]["id"] == "test-model"
    else:  # refused by the gateway itself, in its own JSON error shape
        assert status in (400, 404), (target, status, body)
        if status == 404:
            assert json.loads(body)["error"]["code"] == "not_found"


def test_wrong_method_is_405(host) -> None:
    status, hdrs, body = curl(host, "/v1/chat/completions", key=KEYS["alice"], method="GET")
    assert status == 405 and hdrs["allow"] == "POST"
    assert json.loads(body)["error"]["code"] == "method_not_allowed"
    status, hdrs, _ = curl(host, "/v1/models", key=KEYS["alice"], method="DELETE")
    assert status == 405 and hdrs["allow"] == "GET"


def test_oversized_body_is_413(host) -> None:
    host.run_test(
        'python3 -c \'import json; print(json.dumps({"messages": "x" * 1100000}))\''
        " > /root/big.json"
    )
    status = int(
        host.check_output(
            f"curl -sS --cacert {CA} -o /root/b.out -w '%{{http_code}}' -H 'Authorization: "
            f"Bearer {KEYS['alice']}' --data-binary @/root/big.json {BASE}/v1/chat/completions"
        )
    )
    body = host.file("/root/b.out").content_string
    assert status == 413
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_slow_clients_are_cut_off_and_others_still_served(host) -> None:
    """Six clients sending their headers a byte a second and three stalling in their body:
    each is cut after its timeout, and a normal request meanwhile is answered at once."""
    tag = f"slow-body-{int(time.time())}"
    res = clients(host, "slow", KEYS["alice"], "6", "3", "4", tag)
    header_cuts = sorted(h["cut_s"] for h in res["headers"] if h["cut_s"] is not None)
    body_cuts = sorted(b["stall_cut_s"] for b in res["bodies"] if b["stall_cut_s"] is not None)
    print(
        f"slow clients: header cut after {header_cuts} s, body cut {body_cuts} s after the "
        f"stall, normal requests meanwhile [status, s] {res['normal']}"
    )
    assert len(res["headers"]) == 6 and len(res["bodies"]) == 3, res
    for h in res["headers"]:
        assert h["cut_s"] is not None, h
        assert HEADER_TIMEOUT_S - 0.5 <= h["cut_s"] <= HEADER_TIMEOUT_S + 3, h
        assert h["bytes"] < h["of"], h
    for b in res["bodies"]:
        assert b["alive_while_trickling"], b  # a byte a second: within client_body_timeout
        assert b["stall_cut_s"] is not None, b
        assert BODY_TIMEOUT_S - 0.5 <= b["stall_cut_s"] <= BODY_TIMEOUT_S + 3, b
    assert all(status == 200 and seconds < 1.5 for status, seconds in res["normal"]), res
    log = host.check_output(f'grep -F \'"request_id":"{tag}-\' {ACCESS_LOG} || true')
    assert [json.loads(line)["status"] for line in log.splitlines()] == [408] * 3, log
    upstream_log = upstream_journal(host)
    assert tag not in upstream_log, "a request whose body never came reached a backend"


def test_rate_limit_burst_then_429(host) -> None:
    # bob: 6/min with a burst of 2 -> 3 pass at once, the 4th and 5th are 429.
    statuses = []
    for _ in range(5):
        status, hdrs, body = curl(host, "/v1/models", key=KEYS["bob"])
        statuses.append(status)
    assert statuses[:3] == [200, 200, 200], statuses
    assert statuses[3:] == [429, 429], statuses
    assert hdrs["retry-after"] == "10"
    assert json.loads(body)["error"]["type"] == "rate_limit_error"


def test_concurrency_limit_429(host) -> None:
    # carol may have one request in flight: a slow stream holds it.
    slow = {**CHAT, "stream": True, "max_tokens": 20, "metadata": {"delay_s": 0.2}}
    host.run(f"cat > /root/slow.json <<'EOF'\n{json.dumps(slow)}\nEOF")
    host.run(
        f"nohup curl -sS -N --cacert {CA} -H 'Authorization: Bearer {KEYS['carol']}' "
        f"-H 'Content-Type: application/json' --data-binary @/root/slow.json "
        f"{BASE}/v1/chat/completions > /root/slow.out 2>&1 &"
    )
    time.sleep(1.0)
    status, hdrs, _ = curl(host, "/v1/models", key=KEYS["carol"])
    assert status == 429 and "retry-after" in hdrs
    # other tenants are not affected
    assert curl(host, "/v1/models", key=KEYS["alice"])[0] == 200
    time.sleep(4.0)
    assert curl(host, "/v1/models", key=KEYS["carol"])[0] == 200


def test_request_id_kept_returned_and_logged(host) -> None:
    rid = f"test-rid-{int(time.time())}"
    status, hdrs, _ = curl(
        host, "/v1/chat/completions", key=KEYS["alice"], body=CHAT, headers={"X-Request-Id": rid}
    )
    assert status == 200 and hdrs["x-request-id"] == rid
    line = host.check_output(f"grep -F '{rid}' {ACCESS_LOG} | tail -1")
    entry = json.loads(line)
    assert entry["tenant"] == "alice" and entry["status"] == 200
    assert entry["path"] == "/v1/chat/completions" and entry["method"] == "POST"
    for field in (
        "time",
        "bytes",
        "request_time",
        "upstream_connect_time",
        "upstream_header_time",
        "upstream_response_time",
        "upstream_addr",
    ):
        assert field in entry
    assert entry["upstream_addr"].startswith("127.0.0.1:800")
    upstream_log = upstream_journal(host)
    assert f"request_id={rid}" in upstream_log


def test_malformed_request_id_is_replaced(host) -> None:
    status, hdrs, _ = curl(host, "/v1/models", key=KEYS["alice"], headers={"X-Request-Id": "a b"})
    assert status == 200
    assert len(hdrs["x-request-id"]) == 32 and hdrs["x-request-id"] != "a b"


def test_tenant_key_never_reaches_upstream_nor_logs(host) -> None:
    logs = upstream_journal(host) + host.check_output(
        "cat /var/log/nginx/*.log; journalctl --no-pager -o cat -u nginx"
    )
    for key in (*KEYS.values(), UPSTREAM_KEY):
        assert key not in logs


def test_two_upstreams_share_the_load(host) -> None:
    seen = set()
    for _ in range(8):
        status, hdrs, _ = curl(host, "/v1/models", key=KEYS["alice"])
        assert status == 200
        seen.add(hdrs["x-upstream"])
    assert seen == {"8001", "8002"}


def test_survives_one_upstream_stopped(host) -> None:
    host.run("systemctl stop llmhost-test-upstream@8002")
    try:
        for _ in range(6):
            status, hdrs, _ = curl(host, "/v1/chat/completions", key=KEYS["alice"], body=CHAT)
            assert status == 200 and hdrs["x-upstream"] == "8001"
        assert curl(host, "/healthz")[0] == 200
    finally:
        host.run("systemctl start llmhost-test-upstream@8002")
        wait_until_served(host, time.monotonic())


def test_all_upstreams_down_is_a_json_502(host) -> None:
    host.run("systemctl stop 'llmhost-test-upstream@*'")
    try:
        status, _, body = curl(host, "/v1/models", key=KEYS["alice"])
        assert status == 502 and json.loads(body)["error"]["code"] == "upstream_unavailable"
        # /healthz may answer from its cache for up to gateway_healthz_cache_s.
        deadline = time.monotonic() + HEALTHZ_CACHE_S + 2
        status, _, body = curl(host, "/healthz")
        while status != 503 and time.monotonic() < deadline:
            time.sleep(0.3)
            status, _, body = curl(host, "/healthz")
        assert status == 503 and json.loads(body) == {"status": "upstream_down"}
    finally:
        host.run("systemctl start llmhost-test-upstream@8001 llmhost-test-upstream@8002")
        wait_until_served(host, time.monotonic())


def wait_until_served(host, restarted: float) -> None:
    """Backends marked failed stay out for fail_timeout (10 s): wait for them. Each nginx
    worker keeps its own marks, and the checks below reach only the workers that accept
    them: first let fail_timeout pass since the restart (the last failure came before it),
    so no worker still holds a backend out when the next test connects."""
    time.sleep(max(0.0, restarted + FAIL_TIMEOUT_S + 1 - time.monotonic()))
    for _ in range(30):
        if (
            curl(host, "/healthz")[0] == 200
            and len(
                {curl(host, "/v1/models", key=KEYS["alice"])[1].get("x-upstream") for _ in range(4)}
            )
            == 2
        ):
            return
        time.sleep(1)
    raise AssertionError("the backends did not come back within 30 s")


def test_drain_switch(host) -> None:
    host.run("touch /etc/nginx/llmhost/draining")
    try:
        status, hdrs, body = curl(host, "/v1/chat/completions", key=KEYS["alice"], body=CHAT)
        assert status == 503 and hdrs["retry-after"] == "30"
        assert json.loads(body)["error"]["code"] == "draining"
        status, _, body = curl(host, "/healthz")
        assert status == 503 and json.loads(body) == {"status": "draining"}
    finally:
        host.run("rm -f /etc/nginx/llmhost/draining")
    assert curl(host, "/healthz")[0] == 200


def test_firewall_allows_only_ssh_and_the_gateway(host) -> None:
    rules = host.check_output("nft list table inet llmhost_gateway")
    assert "policy drop" in rules
    assert "tcp dport { 22, 80, 443 } accept" in rules
    assert host.service("llmhost-firewall").is_enabled


def test_firewall_opens_a_further_port_to_named_sources_only(host) -> None:
    rules = host.check_output("nft list table inet llmhost_gateway")
    v4 = re.search(r"ip saddr \{ ([^}]*) \} tcp dport 8000 accept", rules)
    v6 = re.search(r"ip6 saddr (\S+) tcp dport 8000 accept", rules)
    assert v4 and v6, rules
    assert {s.strip() for s in v4[1].split(",")} == {"10.0.0.0/8", "192.168.1.5"}
    assert v6[1] == "fd00::/64"
    # Nowhere else is port 8000 accepted: only through those two source-bound rules.
    assert len(re.findall(r"dport 8000", rules)) == 2, rules


def test_timeout_hierarchy_rendered(host) -> None:
    proxy = host.file("/etc/nginx/llmhost/proxy.conf").content_string
    assert "proxy_read_timeout 90s;" in proxy and "proxy_buffering off;" in proxy
    assert "proxy_http_version 1.1;" in proxy


def _client() -> openai.OpenAI:
    return openai.OpenAI(
        base_url=PUBLISHED,
        api_key=KEYS["alice"],
        http_client=openai.DefaultHttpxClient(verify=str(EVIDENCE / "gateway_certificate.pem")),
        max_retries=0,
    )


def test_openai_client_streams_unbuffered_over_tls() -> None:
    """The official client streams a chat from the control node; chunks arrive spread out."""
    arrivals: list[float] = []
    texts: list[str] = []
    start = time.monotonic()
    stream = _client().chat.completions.create(
        model="test-model",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=6,
        stream=True,
        metadata={"delay_s": "0.3"},
    )
    for chunk in stream:
        arrivals.append(time.monotonic() - start)
        texts.append(chunk.choices[0].delta.content or "")
    assert len(arrivals) == 6
    assert "".join(texts).startswith("tok0 tok1")
    # Buffered, all would arrive together at the end; unbuffered they come 0.3 s apart
    # (1.5 s from the first to the last). Relative to each other, not to the start: a busy
    # control node may take a second for the TLS handshake and the client's first request.
    assert arrivals[-1] - arrivals[0] > 1.0, arrivals


def test_openai_client_sees_models_and_errors() -> None:
    assert [m.id for m in _client().models.list()] == ["test-model"]
    bad = openai.OpenAI(
        base_url=PUBLISHED,
        api_key="nope-0123456789abcdef",
        http_client=openai.DefaultHttpxClient(verify=str(EVIDENCE / "gateway_certificate.pem")),
        max_retries=0,
    )
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_streams_in_parallel_are_not_serialised() -> None:
    """Four streams at once are all under way together: each one's first chunk comes
    before any of them has ended (queued one behind another, a stream would start only
    when the one before it ended), and each spreads out over its 1.75 s (not buffered).
    Measured against each other, not against a clock: a busy control node is slow, not
    wrong."""
    spans: list[tuple[float, float]] = []  # (first chunk, last chunk)

    def one() -> None:
        arrivals = [
            time.monotonic()
            for _ in _client().chat.completions.create(
                model="test-model",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=8,
                stream=True,
                metadata={"delay_s": "0.25"},
            )
        ]
        spans.append((arrivals[0], arrivals[-1]))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(spans) == 4
    assert max(first for first, _ in spans) < min(last for _, last in spans), spans
    assert all(last - first > 1.0 for first, last in spans), spans


def test_evidence_report_has_no_keys() -> None:
    report = (EVIDENCE / "gateway_report.json").read_text(encoding="utf-8")
    data = json.loads(report)
    assert sorted(t["name"] for t in data["tenants"]) == ["alice", "bob", "carol"]
    assert data["checks"]["no_key_status"] == 401
    for key in (*KEYS.values(), UPSTREAM_KEY):
        assert key not in report
    assert (EVIDENCE / "gateway_certificate.pem").read_text().startswith("-----BEGIN CERTIFICATE")


def test_logrotate_rotates_the_gateway_logs_once(host) -> None:
    """The role's /etc/logrotate.d/nginx (inventory's retention and size) is the only one
    that matches the gateway's logs; logrotate runs hourly."""
    conf = host.file("/etc/logrotate.d/nginx").content_string
    for line in (
        "/var/log/nginx/*.log {",
        "daily",
        f"rotate {LOG_RETENTION_DAYS}",
        f"maxsize {LOG_MAX_SIZE}",
        "create 0640 llmhost-gw adm",
        "postrotate",
    ):
        assert re.search(rf"^\s*{re.escape(line)}$", conf, re.M), line
    debug = host.run("logrotate -d /etc/logrotate.conf 2>&1")
    assert debug.rc == 0, debug.stdout
    for log in (ACCESS_LOG, ERROR_LOG):
        seen = re.findall(rf"considering log {re.escape(log)}$", debug.stdout, re.M)
        assert len(seen) == 1, debug.stdout
    assert f"({LOG_RETENTION_DAYS} rotations)" in debug.stdout, debug.stdout
    assert not re.search(r"^error:|duplicate", debug.stdout, re.M), debug.stdout
    calendar = host.check_output("systemctl show logrotate.timer -p TimersCalendar --value")
    assert "OnCalendar=*-*-* *:00:00" in calendar, calendar


def test_a_rotation_reopens_the_logs(host) -> None:
    """After a rotation nginx writes to the new file (postrotate reopened it)."""
    host.run_test("logrotate -f /etc/logrotate.d/nginx")
    time.sleep(1)
    rid = f"after-rotation-{int(time.time())}"
    assert curl(host, "/v1/models", key=KEYS["alice"], headers={"X-Request-Id": rid})[0] == 200
    assert host.file(f"{ACCESS_LOG}.1").exists
    assert rid in host.file(ACCESS_LOG).content_string
    assert rid not in host.file(f"{ACCESS_LOG}.1").content_string
