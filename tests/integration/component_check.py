#!/usr/bin/env python3
"""component_check.py - external components (XEP-0114) on raw sockets.

Usage:
  component_check.py main C2S_PORT COMP_PORT HOST PASSWORD [TLS_PORT]
      every refusal (unknown domain, bad namespace, wrong secret, a stanza
      before the handshake, a foreign 'from', a second connection, bad XML,
      an oversized stanza), what is answered and what still works after each
      (the first connection, a c2s client), the host's disco#items, and the
      idle ping (a whitespace keepalive, the ping and its answer, a silent
      component closed), the idle ones in threads meanwhile; with TLS_PORT, a
      component over direct TLS too.
  component_check.py flood C2S_PORT COMP_PORT HOST PASSWORD
      a component that does not read is closed with <policy-violation/>, and
      what comes for it then is bounced.
  component_check.py hold COMP_PORT DOMAIN SECRET READY_FILE
      authenticates, creates READY_FILE, then prints "stream-error COND" when
      the server ends the stream (or "closed" / "timeout").

Prints TAP lines ("ok - ..."); the .test counts them. The domains and secrets
are those component.test writes into the config.
"""
import hashlib
import os
import socket
import ssl
import sys
import threading
import time
import traceback
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(__file__))
from xmpp_raw import TCP, Closed, q, NS_STREAMS  # noqa: E402

NS_COMP = "jabber:component:accept"
NS_SERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PING = "urn:xmpp:ping"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
SECRETS = {"raw.example": "raw-secret", "gw.chat.example": "gw-secret",
           "quiet.example": "quiet-secret", "slow.example": "slow-secret",
           "bot.example": "bot-secret"}
IDLE = 10            # the config's idle-timeout
SLOW = int(os.environ.get("PARLEY_TEST_TIMEOUT_MS", "5000")) > 5000   # valgrind

lock = threading.Lock()


def ok(cond, name, detail=None):
    with lock:
        print(("ok - " if cond else "not ok - ") + name)
        if not cond and detail:
            for line in str(detail).splitlines():
                print("# " + line)
        sys.stdout.flush()


def check(name, fn):
    try:
        r = fn()
        ok(r is None or bool(r), name, None if r is None or r else "returned %r" % (r,))
    except Exception:
        ok(False, name, traceback.format_exc())


class Comp:
    """A component's side of the stream, byte for byte."""

    timeout = 20 if SLOW else 10

    def __init__(self, port, rcvbuf=None, tls=False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(self.timeout)
        self.sock.connect(("127.0.0.1", port))
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock, server_hostname="raw.example")
        self.parser = ET.XMLPullParser(("start", "end"))
        self.depth = 0
        self.header = None
        self.elements = []

    def send(self, s):
        self.sock.sendall(s.encode() if isinstance(s, str) else s)

    def open(self, domain, ns=NS_COMP):
        self.send("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' "
                  "to='%s'>" % (ns, NS_STREAMS, domain))

    def _pump(self, deadline):
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError("nothing within %ss" % self.timeout)
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise Closed("connection closed")
        self.parser.feed(data)
        for ev, el in self.parser.read_events():
            if ev == "start":
                self.depth += 1
                if self.depth == 1:
                    self.header = el
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.elements.append(el)
                elif self.depth == 0:
                    self.elements.append(None)    # </stream:stream>

    def read_header(self):
        deadline = time.time() + self.timeout
        while self.header is None:
            self._pump(deadline)
        return self.header

    def read(self, timeout=None):
        """The next element; Closed at </stream:stream> or the end of TCP."""
        deadline = time.time() + (timeout or self.timeout)
        while not self.elements:
            self._pump(deadline)
        e = self.elements.pop(0)
        if e is None:
            raise Closed("</stream:stream>")
        return e

    def expect(self, pred, timeout=None):
        deadline = time.time() + (timeout or self.timeout)
        while True:
            e = self.read(max(0.01, deadline - time.time()))
            if pred(e):
                return e

    def handshake(self, domain, secret=None, upper=False):
        self.open(domain)
        h = self.read_header()
        digest = hashlib.sha1((h.get("id") + (secret or SECRETS[domain])).encode()).hexdigest()
        self.send("<handshake>%s</handshake>" % (digest.upper() if upper else digest))
        return self.read()

    def login(self, domain, upper=False):
        e = self.handshake(domain, upper=upper)
        assert e.tag == q(NS_COMP, "handshake") and len(e) == 0, ET.tostring(e)
        return self

    def stream_error(self, timeout=None):
        """(condition, text, closed): the stream error, then </stream:stream> and EOF."""
        e = self.expect(lambda e: e.tag == q(NS_STREAMS, "error"), timeout)
        cond = [x.tag.split("}")[1] for x in e if x.tag != q(NS_SERR, "text")][0]
        text = e.findtext(q(NS_SERR, "text")) or ""
        closed = False
        try:
            self.read(timeout)
        except Closed:
            closed = True
            try:
                self.sock.settimeout(self.timeout)
                closed = self.sock.recv(1) == b""
            except OSError:
                closed = True
        except Exception:
            pass
        return cond, text, closed

    def ping(self, domain, to, id_):
        self.send("<iq type='get' id='%s' from='%s' to='%s'><ping xmlns='%s'/></iq>"
                  % (id_, domain, to, NS_PING))
        return self.expect(lambda e: e.get("id") == id_)

    def close(self):
        try:
            self.send("</stream:stream>")
        except OSError:
            pass
        self.sock.close()


def user(c2s, host, password, name="bob", resource="raw"):
    u = TCP(c2s)
    u.timeout = Comp.timeout
    u.login(name, password, host, resource)
    return u


def c2s_alive(c2s, host, password):
    u = user(c2s, host, password, resource="alive")
    r = u.iq_ping(host, "alive%d" % time.time_ns())
    u.close()
    return r.get("type") == "result"


# ---- main ----

def main(c2s, comp, host, password, tls_port=None):
    alive = lambda: c2s_alive(c2s, host, password)  # noqa: E731
    threads = [threading.Thread(target=f, args=(comp, host))
               for f in (idle_keepalive, idle_silent)]
    for t in threads:
        t.start()

    def refused(domain, want_cond, ns=NS_COMP, secret=None, stanza=None):
        def run():
            c = Comp(comp)
            c.open(domain, ns)
            h = c.read_header()
            if secret is not None:
                d = hashlib.sha1((h.get("id") + secret).encode()).hexdigest()
                c.send("<handshake>%s</handshake>" % d)
            if stanza:
                c.send(stanza)
            cond, text, closed = c.stream_error()
            c.sock.close()
            assert (cond, closed) == (want_cond, True), (cond, text, closed)
            assert text, "no <text/>"
            assert alive(), "a c2s client no longer works"
            return True
        return run

    check("an unknown domain: <host-unknown/>, closed; a c2s client still works",
          refused("nobody.example", "host-unknown"))
    check("a host's domain is not a component: <host-unknown/>",
          refused(host, "host-unknown"))
    check("the namespace jabber:client: <invalid-namespace/>, closed; c2s still works",
          refused("raw.example", "invalid-namespace", ns="jabber:client"))
    check("a wrong secret: <not-authorized/>, closed; a c2s client still works",
          refused("raw.example", "not-authorized", secret="wrong"))
    check("a stanza before the handshake: <not-authorized/>, closed; c2s still works",
          refused("raw.example", "not-authorized",
                  stanza="<message to='bob@%s' from='raw.example'><body>x</body></message>"
                  % host))

    def header():
        c = Comp(comp)
        c.open("Raw.Example")
        h = c.read_header()
        c.close()
        assert h.get("from") == "raw.example", h.attrib
        assert len(h.get("id", "")) >= 16, h.attrib
        return True
    check("the server's header: from the (prepared) domain, a random id of 16+ chars",
          header)

    def foreign_from():
        c = Comp(comp).login("raw.example")
        c.send("<message from='mallory@%s' to='bob@%s'><body>x</body></message>"
               % (host, host))
        cond, text, closed = c.stream_error()
        assert (cond, closed) == ("invalid-from", True), (cond, text, closed)
        assert alive()
        return True
    check("a 'from' outside the component's domain: <invalid-from/>; c2s still works",
          foreign_from)

    def delivered():
        u = user(c2s, host, password, resource="inbox")
        c = Comp(comp).login("raw.example")
        c.send("<message from='Someone@Raw.Example/Here' to='bob@%s/inbox' id='r1'>"
               "<body>from the gateway</body></message>" % host)
        m = u.expect(lambda e: e.get("id") == "r1", what="the component's message")
        assert m.get("from") == "someone@raw.example/Here", m.attrib
        assert m.findtext(q("jabber:client", "body")) == "from the gateway", ET.tostring(m)
        u.send("<message xmlns='jabber:client' to='x@raw.example' id='r2'>"
               "<body>back</body></message>")
        got = c.expect(lambda e: e.get("id") == "r2")
        assert got.tag == q(NS_COMP, "message"), got.tag
        assert got.get("from") == u.jid, got.attrib
        assert got.findtext(q(NS_COMP, "body")) == "back", ET.tostring(got)
        c.close()
        u.close()
        return True
    check("any JID at its domain may send; the user gets it (jabber:client), and the "
          "answer comes back in jabber:component:accept", delivered)

    def no_to():
        c = Comp(comp).login("raw.example")
        c.send("<message from='raw.example' id='nt'><body>x</body></message>")
        e = c.expect(lambda e: e.get("id") == "nt")
        cond = e.find(q(NS_COMP, "error"))
        assert e.get("type") == "error" and cond is not None and \
            cond.find(q(NS_STANZAS, "bad-request")) is not None, ET.tostring(e)
        c.send("<message from='raw.example' to='a@@b' id='bt'/>")
        e = c.expect(lambda e: e.get("id") == "bt")
        assert e.find(".//" + q(NS_STANZAS, "jid-malformed")) is not None, ET.tostring(e)
        r = c.ping("raw.example", host, "after")
        assert r.get("type") == "result", ET.tostring(r)
        c.close()
        return True
    check("no 'to' or a malformed one: a stanza error back, the stream goes on", no_to)

    def second():
        first = Comp(comp).login("raw.example")
        c = Comp(comp)
        e = c.handshake("raw.example")
        assert e.tag == q(NS_STREAMS, "error"), ET.tostring(e)
        cond = [x.tag.split("}")[1] for x in e if x.tag != q(NS_SERR, "text")][0]
        assert cond == "conflict", ET.tostring(e)
        c.sock.close()
        r = first.ping("raw.example", host, "still")
        assert r.get("type") == "result", ET.tostring(r)
        first.close()
        assert alive()
        return True
    check("a second connection for a connected domain: <conflict/>; the first keeps "
          "working, and c2s", second)

    def wrong_then_right():
        # A refused second attempt does not spoil the domain for the next one.
        c = Comp(comp)
        e = c.handshake("raw.example", secret="nope")
        assert e.tag == q(NS_STREAMS, "error"), ET.tostring(e)
        c.sock.close()
        c = Comp(comp).login("raw.example", upper=True)
        r = c.ping("raw.example", host, "upper")
        c.close()
        return r.get("type") == "result"
    check("the digest in upper case is accepted (after a failed attempt)", wrong_then_right)

    def bad_xml():
        c = Comp(comp).login("raw.example")
        c.send("<message to='x@y'><</message>")
        cond, text, closed = c.stream_error()
        assert (cond, closed) == ("not-well-formed", True), (cond, text, closed)
        assert alive()
        return True
    check("not well-formed XML after the handshake: <not-well-formed/>; c2s still works",
          bad_xml)

    def too_big():
        c = Comp(comp).login("raw.example")
        c.send("<message from='raw.example' to='bob@%s'><body>%s</body></message>"
               % (host, "x" * 70000))
        cond, text, closed = c.stream_error()
        assert (cond, closed) == ("policy-violation", True), (cond, text, closed)
        assert alive()
        return True
    check("a stanza over stanza-size: <policy-violation/>; c2s still works", too_big)

    def unknown_element():
        c = Comp(comp).login("raw.example")
        c.send("<foo/>")
        cond, text, closed = c.stream_error()
        assert (cond, closed) == ("unsupported-stanza-type", True), (cond, text, closed)
        return True
    check("an element that is no stanza: <unsupported-stanza-type/>", unknown_element)

    def peer_error():
        c = Comp(comp).login("raw.example")
        c.send("<stream:error><undefined-condition xmlns='%s'/></stream:error>" % NS_SERR)
        try:
            while True:
                c.read()
        except Closed:
            pass
        c = Comp(comp).login("raw.example")     # the domain is free again
        r = c.ping("raw.example", host, "again")
        c.close()
        return r.get("type") == "result"
    check("the component's own stream error ends its stream (and frees the domain)",
          peer_error)

    def items():
        u = user(c2s, host, password, resource="disco")
        r = u.iq_ping(host, "warm")
        u.send("<iq xmlns='jabber:client' type='get' id='it' to='%s'><query xmlns='%s'/>"
               "</iq>" % (host, NS_ITEMS))
        e = u.expect(lambda e: e.get("id") == "it", what="disco#items")
        jids = [i.get("jid") for i in e.iter(q(NS_ITEMS, "item"))]
        u.close()
        assert r is not None
        assert "gw.chat.example" in jids and "bot.example" not in jids, jids
        return True
    check("the host's disco#items list its subdomain component, not one standing alone",
          items)

    def disco_not_connected():
        u = user(c2s, host, password, resource="disco2")
        u.send("<iq xmlns='jabber:client' type='get' id='dn' to='raw.example'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        e = u.expect(lambda e: e.get("id") == "dn", what="the answer")
        u.send("<presence xmlns='jabber:client' to='raw.example' type='unavailable'/>")
        u.send("<message xmlns='jabber:client' to='raw.example' type='error' id='ee'/>")
        u.send("<message xmlns='jabber:client' to='raw.example' id='last'/>")
        last = u.expect(lambda e: e.get("id") in ("last", "ee") or
                        e.tag == q("jabber:client", "presence"), what="a bounce")
        u.close()
        assert e.get("type") == "error" and \
            e.find(".//" + q(NS_STANZAS, "service-unavailable")) is not None, ET.tostring(e)
        assert last.get("id") == "last", "bounced what it should not: " + \
            ET.tostring(last).decode()
        return True
    check("not connected: an IQ is bounced <service-unavailable/>; unavailable presence "
          "and errors are not", disco_not_connected)

    def over_tls():
        c = Comp(tls_port, tls=True).login("raw.example")
        assert c.sock.version(), "no TLS"
        r = c.ping("raw.example", host, "tls")
        c.close()
        return r.get("type") == "result"
    if tls_port:
        check("a component over direct TLS: handshake, a ping of the host", over_tls)

    for t in threads:
        t.join()


def idle_keepalive(comp, host):
    """Whitespace keeps the stream alive; silence brings the server's ping."""
    try:
        c = Comp(comp).login("gw.chat.example")
        c.timeout = IDLE * 4
        end = time.time() + IDLE * 1.5
        pinged = None
        while time.time() < end:
            c.send(" ")
            last = time.time()
            try:
                pinged = c.read(IDLE / 4)
                break
            except TimeoutError:
                pass
        ok(pinged is None, "whitespace from the component keeps it alive: no ping",
           pinged is not None and ET.tostring(pinged))
        p = c.expect(lambda e: e.find(q(NS_PING, "ping")) is not None, IDLE * 3)
        waited = time.time() - last
        ok(p.get("from") == host and p.get("to") == "gw.chat.example" and
           p.get("type") == "get" and waited > IDLE * 0.8,
           "a silent component gets a ping from its host after idle-timeout",
           "%s after %.1f s" % (ET.tostring(p), waited))
        c.send("<iq type='result' id='%s' from='gw.chat.example' to='%s'/>"
               % (p.get("id"), host))
        r = c.ping("gw.chat.example", host, "after-ping")
        ok(r.get("type") == "result", "after answering it the stream goes on")
        c.close()
    except Exception:
        ok(False, "idle keepalive", traceback.format_exc())


def idle_silent(comp, host):
    try:
        c = Comp(comp).login("quiet.example")
        c.expect(lambda e: e.find(q(NS_PING, "ping")) is not None, IDLE * 3)
        start = time.time()
        cond, text, closed = c.stream_error(IDLE * 10)
        waited = time.time() - start
        ok((cond, closed) == ("connection-timeout", True) and waited > IDLE * 0.8,
           "a component that does not answer the ping: <connection-timeout/>",
           "%s %s %s after %.1f s" % (cond, text, closed, waited))
    except Exception:
        ok(False, "idle timeout", traceback.format_exc())


# ---- flood ----

def flood(c2s, comp, host, password):
    slow = Comp(comp, rcvbuf=4096).login("slow.example")
    u = user(c2s, host, password, name="carol", resource="flood")
    got = bytearray()
    stop = threading.Event()

    def reader():
        u.sock.settimeout(0.2)
        while not stop.is_set():
            try:
                d = u.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            got.extend(d)
    t = threading.Thread(target=reader)
    t.start()
    body = "y" * 32768
    sent = 0
    start = time.time()
    deadline = start + (240 if SLOW else 60)
    while b"service-unavailable" not in got and time.time() < deadline and sent < 2000:
        u.send("<message xmlns='jabber:client' to='x@slow.example' id='f%d'><body>%s"
               "</body></message>" % (sent, body))
        sent += 1
        if sent % 50 == 0:
            time.sleep(0.05)
    bounced = b"service-unavailable" in got
    ok(bounced, "a component that does not read: once its output passes the bound, "
       "what comes for it is bounced", "sent %d messages of 32 KiB in %.1f s, got %d "
       "bytes back" % (sent, time.time() - start, len(got)))
    # Now read what the server still flushes to it: the stream error ends it.
    tail = b""
    slow.sock.settimeout(Comp.timeout)
    try:
        while True:
            d = slow.sock.recv(1 << 20)
            if not d:
                break
            tail = (tail + d)[-4096:]
    except OSError as e:
        tail += (" [%s]" % e).encode()
    ok(b"policy-violation" in tail and b"does not read" in tail,
       "... and its stream is closed with <policy-violation/>", tail[-600:])
    stop.set()
    t.join()
    u.sock.settimeout(Comp.timeout)
    u.send("<iq xmlns='jabber:client' type='get' id='fa' to='%s'><ping xmlns='%s'/></iq>"
           % (host, NS_PING))
    # the reader took the bytes past the parser: look at them instead
    data = b""
    end = time.time() + Comp.timeout
    while b"id='fa'" not in data and b'id="fa"' not in data and time.time() < end:
        try:
            data += u.sock.recv(65536)
        except socket.timeout:
            break
    ok(b"fa" in data and b"result" in data, "the sender's c2s stream still works",
       data[-300:])
    u.sock.close()


# ---- hold ----

def hold(comp, domain, secret, ready):
    c = Comp(comp)
    c.timeout = 600
    e = c.handshake(domain, secret)
    if e.tag != q(NS_COMP, "handshake"):
        print("refused %s" % ET.tostring(e).decode())
        return
    open(ready, "w").close()
    try:
        cond, text, closed = c.stream_error(600)
        print("stream-error %s %s" % (cond, text))
    except Closed:
        print("closed")
    except TimeoutError:
        print("timeout")
    sys.stdout.flush()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "main":
        main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5],
             int(sys.argv[6]) if len(sys.argv) > 6 else None)
    elif mode == "flood":
        flood(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif mode == "hold":
        hold(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit("unknown mode " + mode)
