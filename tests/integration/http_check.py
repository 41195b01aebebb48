#!/usr/bin/env python3
# tests/integration/http_check.py - the HTTP server of a running parleyd, from
# the outside (stdlib only): admin routes, keep-alive and pipelining, TLS, the
# limits and refusals of http_parse.c, slowloris. Prints TAP lines without
# numbers; http.test adds the plan.
#
#   http_check.py PUBLIC_PORT ADMIN_PORT TLS_PORT      the checks
#   http_check.py --status PORT PATH                    prints the status code
import re
import socket
import ssl
import sys
import time

HOST = "127.0.0.1"
failures = 0


def report(name, ok, why=""):
    global failures
    print(("ok - " if ok else "not ok - ") + name)
    if not ok:
        failures += 1
        for line in str(why).splitlines()[:20]:
            print("# " + line)


def exchange(port, data, wait=5.0, tls=False, until_close=True):
    """Sends data, returns what came until the peer closed (or wait passed)."""
    s = socket.create_connection((HOST, port), timeout=wait)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    s.sendall(data)
    out, end, closed = b"", time.time() + wait, False
    while time.time() < end:
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        if not b:
            closed = True
            break
        out += b
        if not until_close and b"\r\n\r\n" in out:
            break
    s.close()
    return out, closed


def responses(raw):
    """Splits raw bytes into (status, headers, body) answers, by Content-Length."""
    res = []
    while raw.startswith(b"HTTP/1.1 "):
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        res.append((status, hdrs, rest[:n]))
        raw = rest[n:]
    return res


def get(port, path, method="GET", extra=b"", tls=False):
    raw, _ = exchange(port, ("%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" %
                             (method, path)).encode() + extra + b"\r\n", tls=tls)
    r = responses(raw)
    return r[0] if r else (0, {}, raw)


def metrics_ok(body):
    """Prometheus text format 0.0.4: each sample's family has a TYPE."""
    typed, samples, bad = set(), {}, []
    for line in body.decode().splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif line and not line.startswith("#"):
            m = re.match(r'^([a-z_:][a-z0-9_:]*)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? '
                         r'(-?[0-9.e+]+)$', line)
            base = re.sub(r"_(bucket|sum|count)$", "", m.group(1)) if m else ""
            if not m or (m.group(1) not in typed and base not in typed):
                bad.append(line)
            else:
                samples[m.group(1) + (m.group(2) or "")] = float(m.group(4))
    return samples, bad


def checks(public, admin, tls):
    st, h, body = get(admin, "/health")
    report("admin listener: GET /health is 200 ok, with Date and Content-Length",
           st == 200 and body == b"ok\n" and "date" in h and h.get("content-length") == "3",
           (st, h, body))
    raw, _ = exchange(admin, b"HEAD /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    report("HEAD /health: the headers (Content-Length 3) and no body",
           raw.startswith(b"HTTP/1.1 200") and b"Content-Length: 3\r\n" in raw and
           raw.endswith(b"\r\n\r\n"), raw)
    st, h, body = get(admin, "/metrics")
    s1, bad = metrics_ok(body)
    need = ["parley_sessions", 'parley_connections_open{kind="http"}',
            'parley_http_requests_total{code="2xx"}', "process_cpu_seconds_total",
            "process_resident_memory_bytes", "parley_db_connections",
            'parley_routing_seconds_bucket{le="+Inf"}', "parley_db_query_seconds_count",
            'parley_routed_by_kind_total{kind="iq"}']
    report("GET /metrics: Prometheus text (every sample typed), with sessions, "
           "connections, HTTP requests, stanzas routed by kind, routing and database "
           "latency histograms, process CPU and memory",
           st == 200 and h.get("content-type", "").startswith("text/plain; version=0.0.4")
           and not bad and all(n in s1 for n in need),
           "status %d, bad lines %r, missing %r" % (st, bad[:5], [n for n in need
                                                               if n not in s1]))
    get(admin, "/health")
    _, _, body = get(admin, "/metrics")
    s2, _ = metrics_ok(body)
    mods = ['parley_offline_stored_total{host="http.example"}',
            'parley_offline_delivered_total{host="http.example"}']
    gauge = 'parley_offline_messages{host="http.example"}'
    for _ in range(20):	# the module counts its table once at start
        if gauge in s2:
            break
        time.sleep(0.25)
        s2, _ = metrics_ok(get(admin, "/metrics")[2])
    report("/metrics: what a module adds (mod_offline: stored and delivered counters, "
           "the messages in its table), labelled with the host, typed once",
           all(n in s2 for n in mods) and s2.get(gauge) == 0 and
           body.decode().count("# TYPE parley_offline_stored_total") == 1,
           [n for n in mods + [gauge] if n not in s2])
    k = 'parley_http_requests_total{code="2xx"}'
    report("/metrics: the 2xx counter moves between two scrapes",
           s2.get(k, 0) > s1.get(k, 0), (s1.get(k), s2.get(k)))
    st, _, _ = get(public, "/metrics")
    st2, _, _ = get(public, "/health")
    report("a public listener (no admin=\"true\") does not serve /metrics or /health "
           "(404)", st == 404 and st2 == 404, (st, st2))
    st, h, _ = get(tls, "/nothing", tls=True)
    report("direct TLS listener: an unknown path is 404 over TLS", st == 404, (st, h))

    # keep-alive: two requests, one connection; pipelined: two in one write
    s = socket.create_connection((HOST, admin), timeout=5)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    a1 = s.recv(4096)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    a2 = s.recv(4096)
    s.close()
    report("keep-alive: a second request on the same connection is answered",
           a1.startswith(b"HTTP/1.1 200") and a2.startswith(b"HTTP/1.1 200"), (a1, a2))
    raw, _ = exchange(admin, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\n"
                      b"Host: t\r\nConnection: close\r\n\r\n")
    r = responses(raw)
    report("pipelining: two requests in one write get their answers in order (200, 404)",
           [x[0] for x in r] == [200, 404], raw)

    refusals = [
        ("an encoded slash", b"GET /a%2Fb HTTP/1.1\r\n\r\n", 400),
        ("a dot-dot segment", b"GET /x/../metrics HTTP/1.1\r\n\r\n", 400),
        ("an encoded dot-dot", b"GET /x/%2e%2e/metrics HTTP/1.1\r\n\r\n", 400),
        ("a NUL", b"GET /a%00b HTTP/1.1\r\n\r\n", 400),
        ("a backslash", b"GET /a\\b HTTP/1.1\r\n\r\n", 400),
        ("not HTTP", b"HELLO THERE\r\n\r\n", 400),
        ("headers past 16 KiB", b"GET /health HTTP/1.1\r\nX: " + b"a" * 20000 +
         b"\r\n\r\n", 431),
        ("65 headers", b"GET /health HTTP/1.1\r\n" + b"".join(b"X%d: y\r\n" % i
                                                          for i in range(65)) + b"\r\n",
         431),
        ("a URL past 8 KiB", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        ("a body past 1 MiB", b"POST /health HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n",
         413),
        ("a transfer coding other than chunked",
         b"POST /health HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("a POST to /health", b"POST /health HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 405),
        ("an Upgrade on a route that takes none", b"GET /health HTTP/1.1\r\nConnection: Upgrade\r\n"
         b"Upgrade: websocket\r\n\r\n", 501),
    ]
    why, ok = [], True
    for name, data, want in refusals:
        raw, closed = exchange(admin, data)
        r = responses(raw)
        got = r[0][0] if r else 0
        # the refusals of the parser close the connection; 405 and 501 from a
        # handler keep it unless asked (HTTP/1.1)
        good = got == want and (closed or want in (405, 501))
        ok &= good
        if not good:
            why.append("%s: want %d, got %r (closed %s)" % (name, want, raw[:80], closed))
    report("refused with the right status: encoded slash, dot segments, NUL, backslash, "
           "not HTTP (400), headers too large or many (431), URL too long (414), body "
           "too large (413), gzip coding (501), wrong method (405), upgrade (501)",
           ok, "\n".join(why))

    # the request rate: 300 pipelined requests, past the burst of 100
    raw, _ = exchange(admin, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n" * 299 +
                      b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                      wait=10)
    r = responses(raw)
    codes = [x[0] for x in r]
    limited = [x for x in r if x[0] == 429]
    report("request rate: 300 pipelined requests are all answered, the first 100 with 200 "
           "and those past the burst with 429 and Retry-After",
           len(r) == 300 and codes[:100] == [200] * 100 and limited and
           all(x[1].get("retry-after") == "1" for x in limited),
           "%d answers, %d of them 429; first codes %r" % (len(r), len(limited), codes[:5]))

    # slowloris: a header line a second never makes a whole request
    t0 = time.time()
    s = socket.create_connection((HOST, admin), timeout=30)
    s.sendall(b"GET /health HTTP/1.1\r\n")
    answer = b""
    for i in range(25):
        try:
            s.sendall(b"X-Slow-%d: y\r\n" % i)
        except OSError:
            break
        s.settimeout(1.0)
        try:
            b = s.recv(4096)
            if not b:
                break
            answer += b
            if b"\r\n\r\n" in answer:
                break
        except socket.timeout:
            pass
    s.close()
    took = time.time() - t0
    report("slowloris: a client that sends a header line a second gets 408 and its "
           "connection ends (within 10 s, the request deadline, and before 20)",
           answer.startswith(b"HTTP/1.1 408") and took < 20, "after %.1f s: %r" %
           (took, answer[:80]))


def main():
    if sys.argv[1] == "--status":
        print(get(int(sys.argv[2]), sys.argv[3])[0])
        return 0
    checks(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    return 1 if failures else 0


sys.exit(main())
