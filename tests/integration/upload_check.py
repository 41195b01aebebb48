#!/usr/bin/python3
# tests/integration/upload_check.py - mod_http_upload (XEP-0363) of a running
# parleyd, with slixmpp (its XEP-0030 and XEP-0363 plugins) for the XMPP side
# and http.client for the HTTP side. Prints TAP lines without numbers;
# upload.test adds the plan.
#
#   upload_check.py C2S_PORT HTTP_PORT HOST PASS STORAGE DBCONNINFO
# Accounts alice, bob, carol, dave (password PASS) must exist; the module runs
# with max-file-size 1M, quota 1M, daily-quota 600K, url http://127.0.0.1:HTTP/upload.
import asyncio
import hashlib
import hmac
import base64
import http.client
import io
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse

import slixmpp
from slixmpp.exceptions import IqError

C2S, HTTP, HOST, PASS, STORAGE, DB = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                      sys.argv[4], sys.argv[5], sys.argv[6])
SERVICE = "upload." + HOST
NS = "urn:xmpp:http:upload:0"
failures = 0


def report(name, ok, why=""):
    global failures
    print(("ok - " if ok else "not ok - ") + name)
    if not ok:
        failures += 1
        for line in str(why).splitlines()[:20]:
            print("# " + line)


def psql(sql):
    return subprocess.run(["psql", DB, "-qAtc", sql], capture_output=True, text=True,
                          timeout=20).stdout.strip()


def req(method, path, body=None, headers=None, raw=None):
    """(status, headers dict lower-case, body) of one request on its own connection."""
    if raw is not None:
        s = socket.create_connection(("127.0.0.1", HTTP), timeout=10)
        s.sendall(raw)
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            out += b
        s.close()
        try:
            return int(out.split(b" ", 2)[1]), {}, out
        except (IndexError, ValueError):
            return 0, {}, out
    c = http.client.HTTPConnection("127.0.0.1", HTTP, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    h = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, h, data


def path_of(url):
    return urllib.parse.urlsplit(url).path


class Client:
    def __init__(self, user):
        self.c = slixmpp.ClientXMPP("%s@%s/up" % (user, HOST), PASS)
        for p in ("xep_0030", "xep_0363"):
            self.c.register_plugin(p)
        self.c.ssl_context.check_hostname = False
        self.c.ssl_context.verify_mode = ssl.CERT_NONE

    async def start(self):
        self.c.connect(("127.0.0.1", C2S))
        await self.c.wait_until("session_start", 15)

    async def slot(self, name, size, ctype="application/octet-stream"):
        """The slot IQ's answer, or the IqError."""
        try:
            iq = await self.c.plugin["xep_0363"].request_slot(SERVICE, name, size, ctype,
                                                               timeout=10)
            s = iq["http_upload_slot"]
            return s["put"]["url"], {h["name"]: h["value"] for h in s["put"]["headers"]}, \
                s["get"]["url"]
        except IqError as e:
            return e.iq

    async def upload(self, name, data, ctype="text/plain"):
        up = self.c.plugin["xep_0363"]
        up.upload_service = SERVICE
        up.max_file_size = 1 << 20
        return await up.upload_file(name, size=len(data), content_type=ctype,
                                    input_file=io.BytesIO(data), timeout=10)

    def stop(self):
        self.c.disconnect()


def objects():
    return sorted(os.listdir(os.path.join(STORAGE, "objects")))


async def checks():
    a, b, carol, dave = Client("alice"), Client("bob"), Client("carol"), Client("dave")
    for c in (a, b, carol, dave):
        await c.start()

    info = await a.c.plugin["xep_0030"].get_info(jid=SERVICE, timeout=10)
    di = info["disco_info"]
    form = {}
    for f in di.iterables:
        form = f["values"]
    report("disco#info of upload.HOST: identity store/file, feature " + NS +
           ", the form with max-file-size 1048576",
           ("store", "file", None, "HTTP File Upload") in di["identities"] and
           NS in di["features"] and form.get("FORM_TYPE") == [NS] and
           form.get("max-file-size") == "1048576", (di["identities"], di["features"], form))

    data = b"the same bytes, twice\n" * 100
    before = objects()
    url_a = await a.upload("report 1 \u00e9.txt", data)
    st, h, got = req("GET", path_of(url_a))
    report("slixmpp uploads a file (XEP-0363 slot, PUT); GET serves it: the bytes, "
           "Content-Type, ETag, immutable caching, nosniff, a safe Content-Disposition",
           st == 200 and got == data and h.get("content-type") == "text/plain" and
           h.get("etag", "").strip('"') == hashlib.sha256(data).hexdigest() and
           "immutable" in h.get("cache-control", "") and
           h.get("x-content-type-options") == "nosniff" and
           h.get("content-disposition") == "inline; filename*=UTF-8''report%201%20%C3%A9.txt",
           (st, h, got[:60]))
    url_b = await b.upload("copy.txt", data)
    with open(os.path.join(STORAGE, "..", "urls"), "w") as f:
        f.write(url_a + "\n" + url_b + "\n")
    after = objects()
    st_a, _, got_a = req("GET", path_of(url_a))
    st_b, _, got_b = req("GET", path_of(url_b))
    report("the same bytes uploaded by two users: two URLs, one object on disk, both serve",
           url_a != url_b and len(after) == len(before) + 1 and st_a == st_b == 200 and
           got_a == got_b == data, (url_a, url_b, before, after))
    st, h, got = req("HEAD", path_of(url_a))
    report("HEAD: 200, Content-Length, no body", st == 200 and
           h.get("content-length") == str(len(data)) and got == b"", (st, h, got[:40]))
    st, h, got = req("GET", path_of(url_a), headers={"If-None-Match": h.get("etag", "")})
    report("If-None-Match with the ETag: 304", st == 304, (st, h))
    n = len(data)
    ranges = [("bytes=0-9", 206, data[0:10], "bytes 0-9/%d" % n),
              ("bytes=%d-" % (n - 5), 206, data[-5:], "bytes %d-%d/%d" % (n - 5, n - 1, n)),
              ("bytes=-7", 206, data[-7:], "bytes %d-%d/%d" % (n - 7, n - 1, n)),
              ("bytes=10-99999", 206, data[10:], "bytes 10-%d/%d" % (n - 1, n)),
              ("bytes=%d-" % n, 416, None, "bytes */%d" % n),
              ("bytes=0-1,5-6", 200, data, None),
              ("lines=1-2", 200, data, None)]
    why = []
    for rng, want, body, cr in ranges:
        st, h, got = req("GET", path_of(url_a), headers={"Range": rng})
        if st != want or (body is not None and got != body) or h.get("content-range") != cr:
            why.append("%s: %d %r %r" % (rng, st, h.get("content-range"), got[:20]))
    report("Range: one range of bytes (first, open-ended, suffix, past the end) is 206 with "
           "Content-Range; past the size 416; several ranges or other units the whole file",
           not why, "\n".join(why))

    e = await a.slot("big.bin", 2 << 20)
    err = e["error"] if not isinstance(e, tuple) else None
    big = err.xml.find("{%s}file-too-large" % NS) if err is not None else None
    report("a slot past max-file-size: not-acceptable with <file-too-large><max-file-size>"
           "1048576", err is not None and err["condition"] == "not-acceptable" and
           big is not None and big.findtext("{%s}max-file-size" % NS) == "1048576",
           e if err is None else err)

    # quotas: carol has 500K stored (2 days old); dave uploads today
    sha = hashlib.sha256(b"old").hexdigest()
    psql("INSERT INTO upload_objects (sha256, size) VALUES ('%s', 512000) "
         "ON CONFLICT DO NOTHING; INSERT INTO upload_files (id, host, owner, sha256, name, "
         "type, size, created, expires) VALUES ('%s', '%s', 'carol@%s', '%s', 'old', "
         "'text/plain', 512000, now() - interval '2 days', now() + interval '20 days')" %
         (sha, "0" * 32, HOST, HOST, sha))
    ok = isinstance(await carol.slot("fits.bin", 400000), tuple)
    e = await carol.slot("over.bin", 600000)
    qerr = e["error"] if not isinstance(e, tuple) else None
    report("quota (1M): a slot past what the user has stored gets wait/resource-constraint",
           ok and qerr is not None and qerr["condition"] == "resource-constraint" and
           qerr["type"] == "wait", (ok, e))
    await dave.upload("today.bin", b"d" * 500000, "application/octet-stream")
    e = await dave.slot("more.bin", 200000)
    derr = e["error"] if not isinstance(e, tuple) else None
    retry = derr.xml.find("{%s}retry" % NS) if derr is not None else None
    report("daily quota (600K): past it, wait/resource-constraint with <retry stamp/> a "
           "day after the oldest upload of the day",
           derr is not None and derr["condition"] == "resource-constraint" and
           retry is not None and retry.get("stamp", "").endswith("Z"),
           e if derr is None else derr)

    # slots misused
    put, hdr, get = await a.slot("once.txt", 5, "text/plain")
    st1, _, _ = req("PUT", path_of(put), b"12345", dict(hdr, **{"Content-Type": "text/plain"}))
    st2, _, _ = req("PUT", path_of(put), b"12345", dict(hdr, **{"Content-Type": "text/plain"}))
    report("a slot is used once: the first PUT 201, a second to it 409", st1 == 201 and
           st2 == 409, (st1, st2))
    put, hdr, get = await a.slot("sized.txt", 5, "text/plain")
    st_size, _, _ = req("PUT", path_of(put), b"123456",
                         dict(hdr, **{"Content-Type": "text/plain"}))
    st_type, _, _ = req("PUT", path_of(put), b"12345",
                         dict(hdr, **{"Content-Type": "image/png"}))
    forged = dict(hdr)
    forged["Authorization"] = hdr["Authorization"][:-1] + \
        ("0" if hdr["Authorization"][-1] != "0" else "1")
    st_forged, _, _ = req("PUT", path_of(put), b"12345",
                           dict(forged, **{"Content-Type": "text/plain"}))
    st_none, _, _ = req("PUT", path_of(put), b"12345", {"Content-Type": "text/plain"})
    other = path_of(put).rsplit("/", 1)[0] + "/renamed.txt"
    st_name, _, _ = req("PUT", other, b"12345", dict(hdr, **{"Content-Type": "text/plain"}))
    # an expired slot, signed with the real key (read from the database)
    key = base64.b64decode(psql("SELECT value FROM parley_secrets WHERE name = 'upload_key'"))
    sid = path_of(put).split("/")[2]
    owner = "alice@" + HOST
    exp = int(time.time()) - 10
    mac = hmac.new(key, ("%s\n%s\n%d\n%s\n%s\n%d" % (sid, owner, 5, "text/plain", "sized.txt",
                                                   exp)).encode(), "sha256").hexdigest()
    tok = "Bearer %s.5.%d.%s.%s.%s" % (sid, exp, base64.b64encode(owner.encode()).decode(),
                                       base64.b64encode(b"text/plain").decode(), mac)
    st_exp, _, body_exp = req("PUT", path_of(put), b"12345",
                               {"Authorization": tok, "Content-Type": "text/plain"})
    report("refused PUTs: a wrong size (400), a wrong type (400), a forged token (403), no "
           "token (403), another name (403), an expired slot (403); the slot still works "
           "after", st_size == 400 and st_type == 400 and st_forged == 403 and
           st_none == 403 and st_name == 403 and st_exp == 403 and b"expired" in body_exp and
           req("PUT", path_of(put), b"12345",
                dict(hdr, **{"Content-Type": "text/plain"}))[0] == 201,
           (st_size, st_type, st_forged, st_none, st_name, st_exp, body_exp))

    tricks = [b"GET /upload/../metrics HTTP/1.1\r\n\r\n",
              b"GET /upload/%2e%2e/x HTTP/1.1\r\n\r\n",
              b"GET /upload/" + path_of(url_a).split("/")[2].encode() + b"%2Fx HTTP/1.1\r\n\r\n",
              b"GET /upload/a%00b/x HTTP/1.1\r\n\r\n"]
    codes = [req(None, None, raw=t)[0] for t in tricks]
    st404, _, _ = req("GET", "/upload/" + "f" * 32 + "/nothing.txt")
    st_bad, _, _ = req("GET", "/upload/etc/passwd")
    report("path tricks (.., encoded dots and slashes, NUL) get 400; an unknown id or a "
           "path that is no id 404", codes == [400] * 4 and st404 == 404 and st_bad == 404,
           (codes, st404, st_bad))

    # expiry: one URL expires, the other still serves the same object
    ida, idb = path_of(url_a).split("/")[2], path_of(url_b).split("/")[2]
    psql("UPDATE upload_files SET expires = now() - interval '1 second' WHERE id = '%s'" % ida)
    st_a, _, _ = req("GET", path_of(url_a))
    st_b, _, got_b = req("GET", path_of(url_b))
    report("an expired URL is 404; the other URL to the same object still serves",
           st_a == 404 and st_b == 200 and got_b == data, (st_a, st_b))

    # a client that stops in the middle of its body gives its slot back
    put, hdr, get = await a.slot("slow.bin", 100000)
    s = socket.create_connection(("127.0.0.1", HTTP), timeout=30)
    p = path_of(put)
    s.sendall(("PUT %s HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\nContent-Type: "
               "application/octet-stream\r\nContent-Length: 100000\r\n\r\n" %
               (p, hdr["Authorization"])).encode() + b"x" * 50000)
    t0 = time.time()
    try:
        closed = s.recv(100) == b""
    except (socket.timeout, ConnectionError):
        closed = True
    s.close()
    sid = p.split("/")[2]
    part = os.path.join(STORAGE, "tmp", sid + ".part")
    for _ in range(40):
        if not os.path.exists(part):
            break
        time.sleep(0.25)
    report("a PUT that stops half way is dropped at the idle timeout, its .part removed, "
           "and GET of its URL is 404", closed and time.time() - t0 < 25 and
           not os.path.exists(part) and req("GET", p)[0] == 404,
           (closed, time.time() - t0, os.path.exists(part)))

    for c in (a, b, carol, dave):
        c.stop()


async def half_put(out):
    """A PUT that sends half its body and waits (for a kill -9 of parleyd)."""
    a = Client("alice")
    await a.start()
    put, hdr, get = await a.slot("half.bin", 200000)
    s = socket.create_connection(("127.0.0.1", HTTP), timeout=60)
    s.sendall(("PUT %s HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\nContent-Type: "
               "application/octet-stream\r\nContent-Length: 200000\r\n\r\n" %
               (path_of(put), hdr["Authorization"])).encode() + b"h" * 100000)
    with open(out, "w") as f:
        f.write(path_of(put) + "\n")
    try:
        s.recv(100)
    except OSError:
        pass


def main():
    import traceback
    if len(sys.argv) > 7 and sys.argv[7] == "--half":
        asyncio.get_event_loop().run_until_complete(asyncio.wait_for(half_put(sys.argv[8]),
                                                                     60))
        return 0
    try:
        asyncio.get_event_loop().run_until_complete(asyncio.wait_for(checks(), 180))
        report("the checks ran to their end", True)
    except Exception:
        report("the checks ran to their end", False, traceback.format_exc())
    return 1 if failures else 0


sys.exit(main())
