#!/usr/bin/python3
# tests/integration/bosh_check.py - BOSH (XEP-0124, XEP-0206) against a running
# parleyd, with nothing but the standard library: http.client for the BOSH
# side, a raw socket for the TCP client it chats with, SCRAM-SHA-1 done here.
# It shares no code with the server. Prints TAP lines without numbers;
# bosh.test adds the plan.
#
#   bosh_check.py C2S_PORT HTTP_PORT HOST PASS [--hold-at-shutdown]
# Accounts alice, bob, carol (password PASS) must exist. The server runs with
# <bosh origins="https://good.example" max-inactivity="5" max-wait="10"
# max-hold="1" max-requests="2" max-pause="30" polling="2"/> and the modules
# disco, ping, roster, presence, muc, and the room lobby@conference.HOST exists.
import base64
import hashlib
import hmac
import http.client
import os
import random
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ET

C2S, HTTP, HOST, PASS = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
# Under valgrind parleyd is slower: waits scale (bosh.test passes the factor).
SLOW = float(os.environ.get("BOSH_SLOW", "1"))
PATH = "/http-bind"
NS_BIND_HTTP = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
B = "{%s}" % NS_BIND_HTTP
failures = 0


def report(name, ok, why=""):
    global failures
    print(("ok - " if ok else "not ok - ") + name, flush=True)
    if not ok:
        failures += 1
        for line in str(why).splitlines()[:30]:
            print("# " + line, flush=True)


def post(body, headers=None, method="POST", timeout=30):
    """(status, headers (lower-case), text) of one request on its own connection."""
    c = http.client.HTTPConnection("127.0.0.1", HTTP, timeout=timeout * SLOW)
    h = {"Content-Type": "text/xml; charset=utf-8"}
    h.update(headers or {})
    c.request(method, PATH, body=body.encode() if isinstance(body, str) else body,
              headers=h)
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    hs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hs, data


def parse(text):
    try:
        return ET.fromstring(text)
    except ET.ParseError:
        return None


def esc(s):
    return s.replace("&", "&amp;").replace("'", "&apos;").replace("<", "&lt;")


class Scram:
    """The client side of SCRAM-SHA-1 (RFC 5802), no channel binding."""

    def __init__(self, user, password):
        self.user, self.password = user, password
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = "n=%s,r=%s" % (user, self.nonce)

    def first(self):
        return base64.b64encode(("n,," + self.first_bare).encode()).decode()

    def final(self, challenge_b64):
        sf = base64.b64decode(challenge_b64).decode()
        parts = dict(p.split("=", 1) for p in sf.split(","))
        if not parts["r"].startswith(self.nonce):
            raise ValueError("server nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac("sha1", self.password.encode(),
                                     base64.b64decode(parts["s"]), int(parts["i"]))
        ckey = hmac.new(salted, b"Client Key", hashlib.sha1).digest()
        stored = hashlib.sha1(ckey).digest()
        without = "c=%s,r=%s" % (base64.b64encode(b"n,,").decode(), parts["r"])
        self.auth_message = ",".join([self.first_bare, sf, without]).encode()
        sig = hmac.new(stored, self.auth_message, hashlib.sha1).digest()
        proof = bytes(a ^ b for a, b in zip(ckey, sig))
        skey = hmac.new(salted, b"Server Key", hashlib.sha1).digest()
        self.server_sig = hmac.new(skey, self.auth_message, hashlib.sha1).digest()
        return base64.b64encode(("%s,p=%s" % (without, base64.b64encode(proof).decode()))
                                .encode()).decode()

    def verify(self, success_b64):
        v = base64.b64decode(success_b64).decode()
        return v == "v=" + base64.b64encode(self.server_sig).decode()


class Bosh:
    """A BOSH client: one HTTP connection per request, so that requests can be
    outstanding together (threads) and arrive in any order."""

    def __init__(self, to=HOST, wait=2, hold=1, extra="", ver="1.11"):
        self.rid = random.randint(1 << 20, 1 << 40)
        self.to, self.wait, self.hold, self.extra, self.ver = to, wait, hold, extra, ver
        self.sid = None
        self.jid = None
        self.last_raw = None

    def wrap(self, payload="", attrs="", rid=None):
        if rid is None:
            self.rid += 1
            rid = self.rid
        sid = " sid='%s'" % self.sid if self.sid else ""
        return ("<body xmlns='%s' xmlns:xmpp='%s' rid='%d'%s%s>%s</body>"
                % (NS_BIND_HTTP, NS_XBOSH, rid, sid, attrs, payload))

    def create(self, headers=None):
        ver = " ver='%s'" % self.ver if self.ver else ""
        body = ("<body xmlns='%s' xmlns:xmpp='%s' content='text/xml; charset=utf-8' "
                "rid='%d' to='%s' xml:lang='en' wait='%d' hold='%d'%s xmpp:version='1.0'%s/>"
                % (NS_BIND_HTTP, NS_XBOSH, self.rid, self.to, self.wait, self.hold, ver,
                   self.extra))
        st, hs, text = post(body, headers)
        self.last_raw = text
        el = parse(text)
        if el is not None and el.get("sid"):
            self.sid = el.get("sid")
        return st, hs, el

    def send(self, payload="", attrs="", rid=None, headers=None):
        st, hs, text = post(self.wrap(payload, attrs, rid), headers)
        self.last_raw = text
        return parse(text)

    def send_async(self, payload="", attrs="", rid=None):
        """Sends in a thread; returns a dict that gets 'el', 'raw', 'at'."""
        box = {}
        body = self.wrap(payload, attrs, rid)

        def run():
            try:
                _, _, text = post(body)
                box["raw"], box["el"], box["at"] = text, parse(text), time.monotonic()
            except Exception as e:  # noqa: BLE001 - reported by the caller
                box["error"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        box["thread"] = t
        return box

    def collect(self, pred, tries=10):
        """Polls until an answer holds an element pred likes: that element."""
        for _ in range(tries):
            el = self.send()
            if el is None or terminate_cond(el) is not None:
                return None
            for c in el:
                if pred(c):
                    return c
        return None

    def login(self, user, resource):
        """SASL SCRAM-SHA-1, restart, bind, initial presence: the bound JID."""
        st, hs, el = self.create()
        assert el is not None and el.get("sid"), "no session: %s" % self.last_raw
        self.creation = el
        feats = el.find("{%s}features" % NS_STREAMS)
        assert feats is not None, "no features in the creation response"
        s = Scram(user, PASS)
        el = self.send("<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>"
                       % (NS_SASL, s.first()))
        ch = el.find("{%s}challenge" % NS_SASL)
        assert ch is not None, "no challenge: %s" % self.last_raw
        el = self.send("<response xmlns='%s'>%s</response>" % (NS_SASL, s.final(ch.text)))
        ok = el.find("{%s}success" % NS_SASL)
        assert ok is not None and s.verify(ok.text or ""), "no success: %s" % self.last_raw
        el = self.send("", " to='%s' xml:lang='en' xmpp:restart='true'" % self.to)
        self.restart_el = el
        assert el.find("{%s}features" % NS_STREAMS) is not None, \
            "no features after the restart: %s" % self.last_raw
        el = self.send("<iq xmlns='%s' type='set' id='b1'><bind xmlns='urn:ietf:params:"
                       "xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>"
                       % (NS_CLIENT, resource))
        j = el.find(".//{urn:ietf:params:xml:ns:xmpp-bind}jid")
        assert j is not None, "not bound: %s" % self.last_raw
        self.jid = j.text
        return self.jid


class Tcp:
    """A raw XMPP client over TCP: stanzas as ElementTree elements."""

    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", C2S), timeout=20 * SLOW)
        self.items = []
        self.lock = threading.Condition()
        self.open()

    def open(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                   "xmlns:stream='%s' to='%s' version='1.0'>" % (NS_STREAMS, HOST))

    def write(self, s):
        self.s.sendall(s.encode())

    def next(self, timeout=10):
        """The next top-level element, or None."""
        end = time.monotonic() + timeout * SLOW
        while not self.items:
            if time.monotonic() > end:
                return None
            self.s.settimeout(max(0.05, end - time.monotonic()))
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                return None
            if not data:
                return None
            self.parser.feed(data)
            for ev, el in self.parser.read_events():
                if ev == "start":
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.items.append(el)
        return self.items.pop(0)

    def wait_for(self, pred, timeout=10):
        end = time.monotonic() + timeout * SLOW
        while time.monotonic() < end:
            el = self.next(max(0.1, (end - time.monotonic()) / SLOW))
            if el is not None and pred(el):
                return el
        return None

    def login(self, user, resource):
        self.wait_for(lambda e: e.tag == "{%s}features" % NS_STREAMS)
        s = Scram(user, PASS)
        self.write("<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>" % (NS_SASL, s.first()))
        ch = self.wait_for(lambda e: e.tag == "{%s}challenge" % NS_SASL)
        self.write("<response xmlns='%s'>%s</response>" % (NS_SASL, s.final(ch.text)))
        ok = self.wait_for(lambda e: e.tag == "{%s}success" % NS_SASL)
        assert ok is not None and s.verify(ok.text or ""), "TCP login failed"
        self.open()
        self.wait_for(lambda e: e.tag == "{%s}features" % NS_STREAMS)
        self.write("<iq type='set' id='t1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                   "<resource>%s</resource></bind></iq>" % resource)
        r = self.wait_for(lambda e: e.tag == "{jabber:client}iq" and e.get("id") == "t1")
        self.jid = r.find(".//{urn:ietf:params:xml:ns:xmpp-bind}jid").text
        self.write("<presence/>")
        return self.jid


def children(el):
    return list(el) if el is not None else []


def messages(el):
    return [m.findtext("{jabber:client}body") for m in children(el)
            if m.tag == "{jabber:client}message"]


def terminate_cond(el):
    if el is None or el.get("type") != "terminate":
        return None
    return el.get("condition") or ""


def step(name, fn):
    try:
        fn()
    except AssertionError as e:
        report(name, False, e)
        return False
    except Exception as e:  # noqa: BLE001 - a failure, reported with its words
        report(name, False, "%s: %s" % (type(e).__name__, e))
        return False
    report(name, True)
    return True


def main():
    # ---- plain HTTP: the page, CORS ----
    st, hs, text = post("", method="GET")
    report("GET answers a page saying it works", st == 200 and "It works" in text,
           "%s %s" % (st, text[:200]))
    st, hs, _ = post("", {"Origin": "https://good.example",
                          "Access-Control-Request-Method": "POST"}, method="OPTIONS")
    report("CORS preflight of an allowed Origin: its Origin, the methods, headers, max age",
           st == 200 and hs.get("access-control-allow-origin") == "https://good.example" and
           "POST" in hs.get("access-control-allow-methods", "") and
           "OPTIONS" in hs.get("access-control-allow-methods", "") and
           "Content-Type" in hs.get("access-control-allow-headers", "") and
           int(hs.get("access-control-max-age", "0")) > 0, "%s %s" % (st, hs))
    st, hs, _ = post("", {"Origin": "https://evil.example"}, method="OPTIONS")
    st2, _, _ = post(Bosh().wrap(), {"Origin": "https://evil.example"})
    report("a disallowed Origin gets 403 (preflight and POST)", st == 403 and st2 == 403,
           "%s %s" % (st, st2))

    # ---- refusals ----
    _, _, text = post("<body xmlns='%s' rid='1' sid='0123456789abcdef0123456789abcdef'/>"
                      % NS_BIND_HTTP)
    report("an unknown sid: terminate, item-not-found", terminate_cond(parse(text)) ==
           "item-not-found", text)
    _, _, text = post("<body xmlns='%s' rid='1'" % NS_BIND_HTTP)
    _, _, text2 = post("<foo xmlns='%s' rid='1' to='%s'/>" % (NS_BIND_HTTP, HOST))
    _, _, text3 = post("<body xmlns='%s' rid='x' to='%s'/>" % (NS_BIND_HTTP, HOST))
    report("bad XML, a root that is not <body/>, a bad rid: terminate, bad-request",
           terminate_cond(parse(text)) == "bad-request" and
           terminate_cond(parse(text2)) == "bad-request" and
           terminate_cond(parse(text3)) == "bad-request", "\n".join([text, text2, text3]))
    st, _, el = Bosh(to="nowhere.example").create()
    report("a session for a host not served here: terminate, host-unknown",
           terminate_cond(el) == "host-unknown", ET.tostring(el) if el is not None else st)

    # ---- alice logs in over BOSH, bob over TCP ----
    # long enough that the held requests below outlive valgrind's slowness
    alice = Bosh(wait=2 if SLOW <= 1 else 5, hold=1)

    def login_alice():
        alice.login("alice", "bosh")
        c = alice.creation
        want = {"sid": None, "wait": str(alice.wait), "hold": "1", "requests": "2",
                "inactivity": "5",
                "polling": "2", "maxpause": "30", "ver": "1.11", "from": HOST,
                "secure": "true"}
        bad = [k for k, v in want.items() if c.get(k) is None or (v and c.get(k) != v)]
        assert not bad, "creation response attributes %s wrong: %s" % (bad, c.attrib)
        assert c.get("{%s}version" % NS_XBOSH) == "1.0" and \
            c.get("{%s}restartlogic" % NS_XBOSH) == "true" and c.get("authid"), \
            "xmpp:version, xmpp:restartlogic or authid missing: %s" % c.attrib
        mechs = [m.text for m in c.iter("{%s}mechanism" % NS_SASL)]
        assert "SCRAM-SHA-1" in mechs, "mechanisms: %s" % mechs
        assert len(c.get("sid")) == 32, "sid: %s" % c.get("sid")
    if not step("alice: session created with XEP-0124 §7.1 and XEP-0206 attributes, "
                "SCRAM-SHA-1 login, xmpp:restart, bind", login_alice):
        return
    report("alice's JID is bound with her resource", alice.jid == "alice@%s/bosh" % HOST,
           alice.jid)

    bob = Tcp()
    bob.login("bob", "tcp")
    # directed presence: bob is told when alice's session ends (RFC 6121 §4.6.3)
    alice.send("<presence xmlns='jabber:client'/><presence xmlns='jabber:client' to='%s'/>"
               % bob.jid)
    p = bob.wait_for(lambda e: e.tag == "{jabber:client}presence" and
                     e.get("from") == alice.jid)
    report("bob (TCP) gets alice's directed presence", p is not None and
           p.get("type") is None)

    # chat: a long poll of alice's answered by bob's message; and back
    poll = alice.send_async()
    time.sleep(0.3)
    bob.write("<message to='%s' type='chat'><body>hi alice</body></message>" % alice.jid)
    poll["thread"].join(10 * SLOW)
    report("a held request of alice's is answered with bob's message",
           "hi alice" in messages(poll.get("el")), poll.get("raw"))
    alice.send("<message xmlns='jabber:client' to='%s' type='chat'><body>hi bob</body>"
               "</message>" % bob.jid)
    m = bob.wait_for(lambda e: e.tag == "{jabber:client}message")
    report("bob gets alice's message, from her full JID",
           m is not None and m.findtext("{jabber:client}body") == "hi bob" and
           m.get("from") == alice.jid)
    # a stanza written in the wrapper's namespace (no xmlns) is jabber:client
    alice.send("<message to='%s' type='chat'><body>no xmlns</body></message>" % bob.jid)
    m = bob.wait_for(lambda e: e.tag == "{jabber:client}message")
    report("a stanza inheriting the httpbind namespace is taken as jabber:client",
           m is not None and m.findtext("{jabber:client}body") == "no xmlns")

    # ---- a room's broadcast: bytes shared with TCP streams, each its own 'to' ----
    room = "lobby@conference." + HOST
    alice.send("<presence xmlns='jabber:client' to='%s/alice'><x xmlns='http://jabber.org/"
               "protocol/muc'/></presence>" % room)
    bob.write("<presence to='%s/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
              % room)
    bob.wait_for(lambda e: e.tag == "{jabber:client}presence" and
                 e.get("from") == room + "/bob")
    bob.write("<message to='%s' type='groupchat'><body>to the room</body></message>" % room)
    def said(e):
        return e.tag == "{jabber:client}message" and e.get("type") == "groupchat" and \
            e.findtext("{jabber:client}body") == "to the room"
    g = alice.collect(said)
    gb = bob.wait_for(said)
    report("a groupchat message reaches alice (BOSH) and bob (TCP), each with its own 'to'",
           g is not None and g.get("to") == alice.jid and gb is not None and
           gb.get("to") == bob.jid,
           "%s / %s" % (alice.last_raw, gb is not None and ET.tostring(gb)))
    alice.send("<presence xmlns='jabber:client' to='%s/alice' type='unavailable'/>" % room)
    bob.write("<presence to='%s/bob' type='unavailable'/>" % room)
    bob.wait_for(lambda e: e.tag == "{jabber:client}presence" and
                 e.get("from") == room + "/bob")

    # ---- rid out of order: n+2 is held until n+1 comes ----
    n = alice.rid
    two = alice.send_async("<message xmlns='jabber:client' to='%s' type='chat'><body>two"
                           "</body></message>" % bob.jid, rid=n + 2)
    time.sleep(0.8 * SLOW)
    early = "at" in two
    got_two_early = bob.wait_for(lambda e: e.tag == "{jabber:client}message", 0.2)
    one = alice.send_async("<message xmlns='jabber:client' to='%s' type='chat'><body>one"
                           "</body></message>" % bob.jid, rid=n + 1)
    alice.rid = n + 2
    m1 = bob.wait_for(lambda e: e.tag == "{jabber:client}message")
    m2 = bob.wait_for(lambda e: e.tag == "{jabber:client}message")
    one["thread"].join(10 * SLOW)
    two["thread"].join(10 * SLOW)
    report("rid n+2 before n+1: n+2 waits, the payloads go in rid order",
           not early and got_two_early is None and m1 is not None and m2 is not None and
           m1.findtext("{jabber:client}body") == "one" and
           m2.findtext("{jabber:client}body") == "two",
           "early=%s m1=%s m2=%s" % (early, m1 is not None and ET.tostring(m1),
                                     m2 is not None and ET.tostring(m2)))
    report("... and the answers come in rid order",
           "at" in one and "at" in two and one["at"] <= two["at"] and
           one["el"] is not None and two["el"] is not None and
           terminate_cond(one["el"]) is None and terminate_cond(two["el"]) is None,
           "%s / %s" % (one.get("raw"), two.get("raw")))

    # ---- a repeated rid: the same answer, from the buffer ----
    ping = ("<iq xmlns='jabber:client' type='get' id='ping-1' to='%s'><ping xmlns='urn:xmpp:"
            "ping'/></iq>" % HOST)
    alice.rid += 1
    rid = alice.rid
    st1, _, first = post(alice.wrap(ping, rid=rid))
    st2, _, again = post(alice.wrap(ping, rid=rid))
    el = parse(first)
    iqs = [c for c in children(el) if c.tag == "{jabber:client}iq" and
           c.get("id") == "ping-1" and c.get("type") == "result"]
    report("a repeated rid is answered from the buffer with the same body",
           iqs and first == again and st1 == st2 == 200, "%s\n%s" % (first, again))
    # and processed once: nothing more for it comes
    el = alice.send()
    report("... and its payload was processed once",
           el is not None and not [c for c in children(el) if c.get("id") == "ping-1"],
           alice.last_raw)

    # ---- pause: the session outlives its inactivity, within the pause ----
    t0 = time.monotonic()
    el = alice.send("", " pause='12'")
    report("a pause request is answered at once, without payloads",
           el is not None and not children(el) and terminate_cond(el) is None and
           time.monotonic() - t0 < 1.5 * SLOW, alice.last_raw)
    time.sleep(7.5)
    gone = bob.wait_for(lambda e: e.tag == "{jabber:client}presence" and
                        e.get("type") == "unavailable", 0.2)
    el = alice.send()
    report("after 7.5 s of pause (inactivity 5 s) the session is still there",
           gone is None and el is not None and terminate_cond(el) is None, alice.last_raw)

    # ---- inactivity: alice vanishes, bob is told she is gone ----
    t0 = time.monotonic()
    p = bob.wait_for(lambda e: e.tag == "{jabber:client}presence" and
                     e.get("type") == "unavailable" and e.get("from") == alice.jid, 20)
    waited = time.monotonic() - t0
    report("inactivity (5 s): the session times out and bob gets alice's unavailable "
           "presence", p is not None and waited > 3, "after %.1f s: %s" % (waited, p))
    el = alice.send()
    report("... and the timed-out session is gone (item-not-found)",
           terminate_cond(el) == "item-not-found", alice.last_raw)

    # ---- terminate by the client ----
    carol = Bosh(wait=2)

    def terminate():
        carol.login("carol", "web")
        el = carol.send("<presence xmlns='jabber:client' type='unavailable'/>",
                        " type='terminate'")
        assert el is not None and el.get("type") == "terminate" and \
            not el.get("condition"), "terminate answered: %s" % carol.last_raw
        el = carol.send()
        assert terminate_cond(el) == "item-not-found", "after: %s" % carol.last_raw
    step("type='terminate' (with a payload): answered with a terminate, the session gone",
         terminate)

    # ---- a stream error ends the session with remote-stream-error ----
    dave = Bosh(wait=2)
    dave.create()
    el = dave.send("<message xmlns='jabber:client' to='bob@%s'><body>x</body></message>"
                   % HOST)
    report("a stream error: terminate, remote-stream-error, the error's children inside",
           terminate_cond(el) == "remote-stream-error" and
           el.find("{urn:ietf:params:xml:ns:xmpp-streams}not-authorized") is not None,
           dave.last_raw)

    # ---- a rid outside the window ends the session ----
    w = Bosh(wait=2)
    w.create()
    el = w.send(rid=w.rid + 10)
    el2 = w.send(rid=w.rid + 1)
    report("a rid past the window: terminate, item-not-found, and the session ends",
           terminate_cond(el) == "item-not-found" and terminate_cond(el2) == "item-not-found",
           "%s / %s" % (ET.tostring(el) if el is not None else None, w.last_raw))
    legacy = Bosh(wait=2, ver=None)
    legacy.create()
    st, _, _ = post(legacy.wrap(rid=legacy.rid + 10))
    report("... a legacy client (no 'ver') gets HTTP 404 instead", st == 404, st)

    # ---- polling too often (XEP-0124 §12) ----
    poller = Bosh(wait=0, hold=0, extra=" ack='1'")
    st, hs, el = poller.create({"Origin": "https://good.example"})
    report("a polling session with acks: hold 0, 'ack' is the creation rid, CORS echoed",
           el is not None and el.get("hold") == "0" and el.get("ack") == str(poller.rid) and
           hs.get("access-control-allow-origin") == "https://good.example",
           poller.last_raw)
    el1 = poller.send()
    el2 = poller.send()
    report("two empty polls within 'polling' seconds: terminate, policy-violation",
           el1 is not None and terminate_cond(el1) is None and
           terminate_cond(el2) == "policy-violation",
           "%s / %s" % (ET.tostring(el1) if el1 is not None else None, poller.last_raw))

    # ---- key sequencing (XEP-0124 §15) ----
    seed = os.urandom(8).hex()
    k1 = hashlib.sha1(seed.encode()).hexdigest()
    k2 = hashlib.sha1(k1.encode()).hexdigest()
    k3 = hashlib.sha1(k2.encode()).hexdigest()
    keyed = Bosh(wait=1, extra=" newkey='%s'" % k3)
    keyed.create()
    el1 = keyed.send("", " key='%s'" % k2)
    el2 = keyed.send("", " key='%s'" % k2)
    report("the right key is taken, a wrong one is item-not-found",
           el1 is not None and terminate_cond(el1) is None and
           terminate_cond(el2) == "item-not-found", keyed.last_raw)

    bob.write("</stream:stream>")


def hold_at_shutdown():
    """A session with a request held: prints 'held', then its answer's condition
    and children when parleyd stops."""
    s = Bosh(wait=10)
    s.create()
    box = s.send_async()
    print("held", flush=True)
    box["thread"].join(120)
    el = box.get("el")
    print("answer:", terminate_cond(el), [c.tag for c in children(el)], flush=True)


if __name__ == "__main__" and len(sys.argv) > 5 and sys.argv[5] == "--hold-at-shutdown":
    hold_at_shutdown()
elif __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - the rest cannot run
        report("the checker ran to its end", False, "%s: %s" % (type(e).__name__, e))
    sys.exit(1 if failures else 0)
