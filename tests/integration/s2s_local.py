"""s2s_local.py - clients on two federated servers, for s2s.test (stdlib only).

Usage: s2s_local.py STEP ARGS...; each step prints TAP lines ("ok - ..." /
"not ok - ...") that s2s.test counts. Every wait is bounded.

  basic  PORT_A A PORT_B B PASS      chat, subscription and IQs both ways
  bounce PORT_A A TO PASS SECS WANT  a message to TO comes back with WANT
                                     (an error condition) within SECS
  send   PORT_A A TO PASS N FILE     sends N numbered messages to TO, one
                                     every 50 ms, writing "sent K" to FILE
  count  PORT_B B PASS N SECS        bob logs in, takes N messages, reports
                                     missing and duplicates
  raw    PORT HOST FROM CASE         a raw s2s stream with a defect: the
                                     stream error that must answer it
"""
import os
import socket
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xmpp_raw import TCP, Closed, q  # noqa: E402

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
failed = 0


def tap(ok, name, detail=""):
    global failed
    print(("ok - " if ok else "not ok - ") + name, flush=True)
    if not ok:
        failed += 1
        for line in str(detail).splitlines():
            print("# " + line, flush=True)


def client(port, user, host, password, res):
    c = TCP(int(port))
    c.timeout = 20
    c.login(user, password, host, resource=res)
    c.send("<iq xmlns='jabber:client' type='get' id='roster'>"
           "<query xmlns='jabber:iq:roster'/></iq>")
    c.expect(lambda e: e.get("id") == "roster", what="the roster")
    c.presence()
    return c


def is_msg(body):
    return lambda e: e.tag == "{jabber:client}message" and \
        e.findtext("{jabber:client}body") == body


def basic(pa, a, pb, b, pw):
    alice = client(pa, "alice", a, pw, "ra")
    bob = client(pb, "bob", b, pw, "rb")
    t0 = time.time()
    alice.send("<message xmlns='jabber:client' to='bob@%s' type='chat'><body>hi bob</body>"
               "</message>" % b)
    try:
        m = bob.expect(is_msg("hi bob"), timeout=30, what="alice's message")
        tap(m.get("from") == "alice@%s/ra" % a, "%s -> %s: a chat message arrives, from "
            "alice's full JID (%.1f s, the stream made on the way)" % (a, b, time.time() - t0),
            m.get("from"))
        tap(m.find("{urn:xmpp:sid:0}stanza-id") is not None and
            m.find("{urn:xmpp:sid:0}stanza-id").get("by") == "bob@%s" % b,
            "%s -> %s: the recipient's server stamps its own stanza-id" % (a, b))
    except Exception as e:  # noqa: BLE001
        tap(False, "%s -> %s: a chat message arrives" % (a, b), e)
    bob.send("<message xmlns='jabber:client' to='alice@%s/ra' type='chat'><body>hi alice"
             "</body></message>" % a)
    try:
        m = alice.expect(is_msg("hi alice"), timeout=30, what="bob's answer")
        tap(m.get("from") == "bob@%s/rb" % b, "%s -> %s: the answer arrives" % (b, a))
    except Exception as e:  # noqa: BLE001
        tap(False, "%s -> %s: the answer arrives" % (b, a), e)

    # Subscriptions: alice asks, bob approves and asks back, alice approves.
    alice.send("<presence xmlns='jabber:client' to='bob@%s' type='subscribe'/>" % b)
    try:
        p = bob.expect(lambda e: e.tag == "{jabber:client}presence" and
                       e.get("type") == "subscribe", timeout=20, what="the request")
        tap(p.get("from") == "alice@%s" % a, "%s -> %s: a subscription request arrives "
            "from alice's bare JID" % (a, b), p.get("from"))
        bob.send("<presence xmlns='jabber:client' to='alice@%s' type='subscribed'/>" % a)
        p = alice.expect(lambda e: e.tag == "{jabber:client}presence" and
                         e.get("type") == "subscribed", timeout=20, what="subscribed")
        tap(True, "%s -> %s: the approval arrives" % (b, a))
        p = alice.expect(lambda e: e.tag == "{jabber:client}presence" and
                         e.get("from") == "bob@%s/rb" % b and e.get("type") is None,
                         timeout=20, what="bob's presence")
        tap(True, "%s -> %s: then bob's available presence (RFC 6121 §3.1.5)" % (b, a))
        bob.send("<presence xmlns='jabber:client' to='alice@%s' type='subscribe'/>" % a)
        alice.expect(lambda e: e.tag == "{jabber:client}presence" and
                     e.get("type") == "subscribe", timeout=20, what="bob's request")
        alice.send("<presence xmlns='jabber:client' to='bob@%s' type='subscribed'/>" % b)
        bob.expect(lambda e: e.tag == "{jabber:client}presence" and
                   e.get("from") == "alice@%s/ra" % a and e.get("type") is None,
                   timeout=20, what="alice's presence")
        tap(True, "%s -> %s: subscribed back both ways: alice's presence reaches bob" % (a, b))
        bob.send("<iq xmlns='jabber:client' type='get' id='r2'><query "
                 "xmlns='jabber:iq:roster'/></iq>")
        r = bob.expect(lambda e: e.get("id") == "r2", what="bob's roster")
        item = r.find(".//{jabber:iq:roster}item")
        tap(item is not None and item.get("jid") == "alice@%s" % a and
            item.get("subscription") == "both", "%s: bob's roster says subscription=both "
            "with alice@%s" % (b, a), ET.tostring(r))
    except Exception as e:  # noqa: BLE001
        tap(False, "subscriptions across %s and %s" % (a, b), e)

    # IQs: to a user's full JID, and to the other server itself.
    alice.send("<iq xmlns='jabber:client' type='get' id='ping1' to='bob@%s/rb'>"
               "<ping xmlns='urn:xmpp:ping'/></iq>" % b)
    try:
        r = bob.expect(lambda e: e.get("id") == "ping1", timeout=20, what="alice's ping")
        tap(r.get("type") == "get" and r.get("from") == "alice@%s/ra" % a,
            "%s -> %s: an IQ get reaches bob's full JID" % (a, b), ET.tostring(r))
        bob.send("<iq xmlns='jabber:client' type='result' id='ping1' to='%s'/>" % r.get("from"))
        r = alice.expect(lambda e: e.get("id") == "ping1", timeout=20, what="the result")
        tap(r.get("type") == "result" and r.get("from") == "bob@%s/rb" % b,
            "%s -> %s: bob's IQ result comes back" % (b, a), ET.tostring(r))
    except Exception as e:  # noqa: BLE001
        tap(False, "an IQ between alice and bob, both ways", e)
    alice.send("<iq xmlns='jabber:client' type='get' id='v1' to='%s'><query "
               "xmlns='jabber:iq:version'/></iq>" % b)
    r = alice.expect(lambda e: e.get("id") == "v1", timeout=20, what="the version")
    tap(r.get("type") == "result" and r.get("from") == b and
        r.findtext(".//{jabber:iq:version}name") == "Parley",
        "%s -> %s: jabber:iq:version of the other server answers Parley" % (a, b),
        ET.tostring(r))
    bob.send("<iq xmlns='jabber:client' type='get' id='d1' to='%s'><query "
             "xmlns='http://jabber.org/protocol/disco#info'/></iq>" % a)
    r = bob.expect(lambda e: e.get("id") == "d1", timeout=20, what="disco#info")
    tap(r.get("type") == "result" and r.get("from") == a,
        "%s -> %s: disco#info of the other server answers" % (b, a), ET.tostring(r))
    alice.close()
    bob.close()


def bounce(pa, a, to, pw, secs, want):
    alice = client(pa, "alice", a, pw, "rb%d" % os.getpid())
    t0 = time.time()
    alice.send("<message xmlns='jabber:client' to='%s' type='chat' id='b1'><body>are you "
               "there</body></message>" % to)
    try:
        e = alice.expect(lambda e: e.get("id") == "b1", timeout=float(secs),
                         what="the bounce")
        cond = e.find(".//{jabber:client}error/*")
        name = cond.tag.split("}")[1] if cond is not None else None
        text = e.findtext(".//{%s}text" % NS_STANZAS) or ""
        tap(e.get("type") == "error" and name == want,
            "a message to %s comes back with <%s/> within %.1f s (%s)" %
            (to, want, time.time() - t0, text), ET.tostring(e))
        print("# text: " + text)
    except Exception as e:  # noqa: BLE001
        tap(False, "a message to %s comes back with <%s/>" % (to, want), e)
    alice.close()


def send(pa, a, to, pw, n, path):
    alice = client(pa, "alice", a, pw, "burst")
    with open(path, "w") as f:
        for k in range(1, int(n) + 1):
            alice.send("<message xmlns='jabber:client' to='%s' type='chat' id='m%d'>"
                       "<body>msg %d</body></message>" % (to, k, k))
            f.write("sent %d\n" % k)
            f.flush()
            time.sleep(0.05)
    # Errors for any of them would come back here: none may.
    try:
        e = alice.expect(lambda e: e.get("type") == "error", timeout=3)
        tap(False, "no message of the burst comes back as an error", ET.tostring(e))
    except TimeoutError:
        tap(True, "no message of the burst comes back as an error")
    alice.close()


def count(pb, b, pw, n, secs):
    n = int(n)
    bob = TCP(int(pb))
    bob.timeout = 20
    bob.login("bob", pw, b, resource="count")
    bob.presence()	# the offline store flushes
    seen = {}
    deadline = time.time() + float(secs)
    while time.time() < deadline and len(seen) < n:
        try:
            e = bob.expect(lambda e: e.tag == "{jabber:client}message" and
                           (e.findtext("{jabber:client}body") or "").startswith("msg "),
                           timeout=max(0.1, deadline - time.time()))
        except TimeoutError:
            break
        k = int(e.findtext("{jabber:client}body")[4:])
        seen[k] = seen.get(k, 0) + 1
    # A little longer for duplicates after the last one.
    try:
        while True:
            e = bob.expect(lambda e: e.tag == "{jabber:client}message", timeout=2)
            b_ = e.findtext("{jabber:client}body") or ""
            if b_.startswith("msg "):
                k = int(b_[4:])
                seen[k] = seen.get(k, 0) + 1
    except (TimeoutError, Closed):
        pass
    missing = [k for k in range(1, n + 1) if k not in seen]
    dups = [k for k, c in seen.items() if c > 1]
    tap(not missing, "all %d messages sent across the restart arrive (missing: %s)" %
        (n, missing[:20]))
    tap(not dups, "none of them twice (duplicates: %s)" % dups[:20])
    bob.close()


def raw(port, host, frm, case, secs=None):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    hdr = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='%s' "
           "xmlns:db='jabber:server:dialback' to='%s' from='%s' version='1.0'>" %
           (NS_STREAMS, host, frm))
    want = {"unknown-host": "host-unknown", "denied": "policy-violation",
            "unauthenticated": "not-authorized", "namespace": "invalid-namespace",
            "dialback-invalid": "type='invalid'",
            "dialback-unreachable": "type='invalid'",
            "dialback-self": "not-authorized",
            "stanza-before-auth": "not-authorized"}[case]
    if case == "namespace":
        hdr = hdr.replace("jabber:server'", "jabber:client'", 1)
    s.sendall(hdr.encode())
    if case == "stanza-before-auth":
        s.sendall(b"<message to='alice@%s' from='x@%s'><body>spoof</body></message>" %
                  (host.encode(), frm.encode()))
    if case in ("unauthenticated", "dialback-invalid", "dialback-unreachable",
                "dialback-self"):
        s.sendall(b"<db:result from='%s' to='%s'>00</db:result>" % (frm.encode(),
                                                                    host.encode()))
    data = b""
    # An authoritative server that cannot be found: the answer comes within the
    # connect-timeout (secs, given after the case).
    deadline = time.time() + (int(secs) if secs else 10)
    while time.time() < deadline and b"</stream:stream>" not in data:
        s.settimeout(max(0.1, min(10, deadline - time.time())))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    s.close()
    text = data.decode(errors="replace")
    tap(("<%s " % want) in text or ("<%s/>" % want) in text or want in text,
        "a raw s2s stream (%s) is answered with %s" % (case, want), text[-600:])
    if case == "dialback-self":
        # XEP-0220 §2.4: the error inside <db:result/> is the stream's <error/>.
        tap("<error " in text and "db:error" not in text,
            "the dialback error is an <error/> of jabber:server", text[-600:])


if __name__ == "__main__":
    step, args = sys.argv[1], sys.argv[2:]
    {"basic": basic, "bounce": bounce, "send": send, "count": count, "raw": raw}[step](*args)
    sys.exit(1 if failed else 0)
