#!/usr/bin/python3
# contrib/bench/upload.py - XEP-0363 upload and download throughput against a
# running server, with slixmpp (Debian's python3-slixmpp) for the slots and
# http.client for the bytes; the server's CPU and peak memory from /proc.
#
#   contrib/bench/upload.py --jid USER@HOST --password PW --service upload.HOST \
#       [--server 127.0.0.1:5222] [--pid PID] [--files N] [--size BYTES] [--insecure]
#
# Prints one JSON object: put and get MiB/s (bytes over the summed request
# times, one connection, files in turn), server CPU seconds per MiB moved, and
# the server's VmHWM before and after (kB). Random bytes, so nothing dedupes.
import argparse
import asyncio
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse

import slixmpp


def cpu_of(pid):
    if not pid:
        return 0.0
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hwm_of(pid):
    if not pid:
        return 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def connection(url, insecure):
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx,
                                           timeout=120), u
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=120), u


async def run(a):
    host, port = a.server.rsplit(":", 1)
    c = slixmpp.ClientXMPP(a.jid + "/bench", a.password)
    c.register_plugin("xep_0363")
    c.ssl_context.check_hostname = False
    c.ssl_context.verify_mode = ssl.CERT_NONE
    c.connect((host, int(port)))
    await c.wait_until("session_start", 15)
    data = [os.urandom(a.size) for _ in range(a.files)]
    hwm0, cpu0 = hwm_of(a.pid), cpu_of(a.pid)
    put_s = get_s = 0.0
    urls = []
    for d in data:
        iq = await c.plugin["xep_0363"].request_slot(a.service, "bench.bin", len(d),
                                                     "application/octet-stream", timeout=15)
        s = iq["http_upload_slot"]
        hdr = {h["name"]: h["value"] for h in s["put"]["headers"]}
        conn, u = connection(s["put"]["url"], a.insecure)
        t = time.monotonic()
        conn.request("PUT", u.path, body=d, headers=dict(hdr, **{
            "Content-Type": "application/octet-stream"}))
        r = conn.getresponse()
        r.read()
        put_s += time.monotonic() - t
        conn.close()
        if r.status != 201:
            raise SystemExit("PUT: %d" % r.status)
        urls.append(s["get"]["url"])
    cpu_put = cpu_of(a.pid)
    for url, d in zip(urls, data):
        conn, u = connection(url, a.insecure)
        t = time.monotonic()
        conn.request("GET", u.path)
        r = conn.getresponse()
        got = r.read()
        get_s += time.monotonic() - t
        conn.close()
        if got != d:
            raise SystemExit("GET: other bytes")
    cpu_get = cpu_of(a.pid)
    c.disconnect()
    mib = a.files * a.size / 1048576
    return {"files": a.files, "size": a.size, "mib": round(mib, 2),
            "put_mib_s": round(mib / put_s, 1), "get_mib_s": round(mib / get_s, 1),
            "server_cpu_s_per_mib_put": round((cpu_put - cpu0) / mib, 4) if a.pid else None,
            "server_cpu_s_per_mib_get": round((cpu_get - cpu_put) / mib, 4) if a.pid else None,
            "server_hwm_kb_before": hwm0, "server_hwm_kb_after": hwm_of(a.pid)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--server", default="127.0.0.1:5222")
    p.add_argument("--pid", type=int, default=0)
    p.add_argument("--files", type=int, default=1)
    p.add_argument("--size", type=int, default=10 << 20)
    p.add_argument("--insecure", action="store_true", help="accept any TLS certificate")
    a = p.parse_args()
    print(json.dumps(asyncio.get_event_loop().run_until_complete(run(a))))


sys.exit(main())
