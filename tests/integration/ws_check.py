#!/usr/bin/env python3
"""ws_check.py - XMPP over WebSocket (RFC 7395) against a running parleyd.

Usage: ws_check.py C2S_PORT HTTP_PORT HOST PASSWORD PHASE
PHASE "main": handshake, login, chat with a TCP client, framing errors, an
abrupt drop, XEP-0198 resumption across transports, ping. PHASE "policy" (a
config with an Origin allow-list and see-other-uri): the Origin check and
the redirect. Prints TAP lines ("ok - ..."); the .test counts them.
"""
import socket
import sys
import time
import traceback
import xml.etree.ElementTree as ET

sys.path.insert(0, __import__("os").path.dirname(__file__))
from xmpp_raw import (TCP, WS, Closed, q, NS_STREAMS, NS_SM, NS_FRAMING)  # noqa: E402

C2S, HTTP, HOST, PASS, PHASE = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                sys.argv[4], sys.argv[5])


def ok(cond, name, detail=None):
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


def stream_error(c, timeout=10):
    """The condition of the stream error c gets, then checks the close."""
    e = c.expect(lambda e: e.tag == q(NS_STREAMS, "error"), timeout, "a stream error")
    cond = [x.tag.split("}")[1] for x in e if x.tag.split("}")[1] != "text"][0]
    closed = False
    try:
        c.expect(lambda e: e.tag == q(NS_FRAMING, "close"), timeout, "<close/>")
        c.read_element(timeout)
    except Closed:
        closed = True
    except Exception:
        pass
    return cond, closed


def tcp_alive(bob):
    r = bob.iq_ping(HOST, "alive%d" % time.time_ns())
    return r.get("type") == "result"


def subscribe(a, b, a_jid, b_jid):
    """Mutual subscription between a and b (both bound, b's bare JID etc.)."""
    for x, y, yj, xj in ((a, b, b_jid, a_jid), (b, a, a_jid, b_jid)):
        x.send("<presence xmlns='jabber:client' type='subscribe' to='%s'/>" % yj)
        y.expect(lambda e: e.get("type") == "subscribe", what="subscribe")
        y.send("<presence xmlns='jabber:client' type='subscribed' to='%s'/>" % xj)
        x.expect(lambda e: e.get("type") == "subscribed", what="subscribed")


def main():
    bob = TCP(C2S)
    bob.login("bob", PASS, HOST, "tcp")
    bob.presence()

    def handshake():
        w = WS(HTTP)
        good = (w.status == 101 and w.accept_ok and
                w.headers.get("sec-websocket-protocol") == "xmpp")
        w.sock.close()
        return good
    check("handshake: 101 with Sec-WebSocket-Accept and the xmpp subprotocol", handshake)

    def no_proto():
        w = WS(HTTP, protocol=None)
        w.sock.close()
        return w.status == 400
    check("handshake without the xmpp subprotocol: 400", no_proto)

    def plain_get():
        s = socket.create_connection(("127.0.0.1", HTTP), timeout=10)
        s.sendall(b"GET /xmpp-websocket HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        d = s.recv(4096).decode()
        s.close()
        return d.startswith("HTTP/1.1 426") and "upgrade: websocket" in d.lower()
    check("a GET without Upgrade: 426 Upgrade Required", plain_get)

    def get(path, host, method="GET"):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", HTTP, timeout=10)
        c.putrequest(method, path, skip_host=True)
        c.putheader("Host", host)
        c.endheaders()
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    if PHASE == "main":
        def hostmeta():
            here = "%s:%d" % (HOST, HTTP)
            st, h, body = get("/.well-known/host-meta", here)
            x = ET.fromstring(body)
            links = {l.get("rel"): l.get("href")
                     for l in x.iter("{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link")}
            assert st == 200 and h.get("access-control-allow-origin") == "*", (st, h)
            assert h["content-type"].startswith("application/xrd+xml"), h
            want = {"urn:xmpp:alt-connections:websocket": "ws://%s/xmpp-websocket" % here}
            if get("/http-bind", here)[0] != 404:     # BOSH served by this build
                want["urn:xmpp:alt-connections:xbosh"] = "http://%s/http-bind" % here
            assert links == want, links
            st, h, body = get("/.well-known/host-meta.json", here)
            j = __import__("json").loads(body)
            got = {l["rel"]: l["href"] for l in j["links"]}
            assert st == 200 and got == links and h.get("access-control-allow-origin") == "*"
            st, h, body = get("/.well-known/host-meta", here, "OPTIONS")
            assert st == 204 and h.get("access-control-allow-origin") == "*", (st, h)
            st, h, body = get("/.well-known/host-meta", "evil'><x")
            return st == 200 and "evil" not in body and "ws://%s/xmpp" % HOST in body
        check("XEP-0156: host-meta (XRD) and host-meta.json list the WebSocket and BOSH "
              "URLs made of the Host, with CORS; a bad Host is not echoed", hostmeta)

    if PHASE == "policy":
        def hostmeta_url():
            st, h, body = get("/.well-known/host-meta.json", "x.example")
            j = __import__("json").loads(body)
            got = {l["rel"]: l["href"] for l in j["links"]}
            return got == {"urn:xmpp:alt-connections:websocket": "wss://chat.example/ws"}
        check("host-meta gives the configured url (a proxy's) and leaves out a disabled "
              "BOSH", hostmeta_url)

        def origin():
            bad = WS(HTTP, origin="http://evil.example")
            good = WS(HTTP, origin="http://good.example")
            bad.sock.close()
            good.sock.close()
            return bad.status == 403 and good.status == 101
        check("Origin allow-list: a listed origin opens, another gets 403", origin)

        def see_other():
            w = WS(HTTP, origin="http://good.example")
            w.open(HOST)
            e = w.expect(lambda e: True, what="an answer to <open/>")
            try:
                w.read_element(5)
                closed = False
            except Closed:
                closed = True
            return (e.tag == q(NS_FRAMING, "close") and
                    e.get("see-other-uri") == "wss://other.example/ws" and closed)
        check("see-other-uri: <close see-other-uri='...'/> answers <open/>, then the "
              "WebSocket closes", see_other)
        bob.close()
        return

    alice = WS(HTTP)
    jid = None

    def opening():
        alice.open(HOST)
        hdr = alice.expect(lambda e: e.tag == q(NS_FRAMING, "open"), what="<open/>")
        assert hdr.get("from") == HOST and hdr.get("version") == "1.0" and hdr.get("id")
        feats = alice.expect(lambda e: e.tag == q(NS_STREAMS, "features"))
        return feats.find(q("urn:ietf:params:xml:ns:xmpp-tls", "starttls")) is None
    check("<open/> is answered with <open from id version/> and features without "
          "STARTTLS (RFC 7395 §3.9)", opening)

    def scram():
        nonlocal jid
        from xmpp_raw import Scram, NS_SASL, NS_BIND
        s = Scram("alice", PASS)
        alice.send("<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>" % (NS_SASL, s.first()))
        ch = alice.expect(lambda e: e.tag == q(NS_SASL, "challenge"))
        alice.send("<response xmlns='%s'>%s</response>" % (NS_SASL, s.final(ch.text)))
        alice.expect(lambda e: e.tag == q(NS_SASL, "success"))
        alice.open(HOST)
        alice.expect(lambda e: e.tag == q(NS_FRAMING, "open"))
        f = alice.expect(lambda e: e.tag == q(NS_STREAMS, "features"))
        assert f.find(q(NS_BIND, "bind")) is not None
        alice.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='%s'>"
                   "<resource>web</resource></bind></iq>" % NS_BIND)
        r = alice.expect(lambda e: e.get("id") == "b")
        jid = r.find(".//" + q(NS_BIND, "jid")).text
        return jid == "alice@%s/web" % HOST
    check("SCRAM-SHA-1 login, stream restart with a new <open/>, bind", scram)

    def chat():
        alice.send("<message xmlns='jabber:client' to='bob@%s' type='chat'>"
                   "<body>hello from the web</body></message>" % HOST)
        m = bob.expect(lambda e: e.tag == "{jabber:client}message", what="the message")
        assert m.findtext("{jabber:client}body") == "hello from the web", ET.tostring(m)
        assert m.get("from") == jid
        bob.send("<message xmlns='jabber:client' to='%s' type='chat'><body>hello "
                 "&amp; welcome</body></message>" % jid)
        m = alice.expect(lambda e: e.tag == "{jabber:client}message")
        return m.findtext("{jabber:client}body") == "hello & welcome" and \
            m.get("from") == "bob@%s/tcp" % HOST
    check("a message from the WebSocket to a TCP client and back", chat)

    def ping_pong():
        alice.frame(b"are you there", opcode=9)
        deadline = time.time() + 10
        while time.time() < deadline:
            op, p = alice.read_frame(deadline - time.time())
            if op == 10:
                return p == b"are you there"
        return False
    check("a WebSocket ping gets its pong", ping_pong)

    # ws.test looks at parleyctl sessions and /metrics while alice is bound
    open(sys.argv[6], "w").close() if len(sys.argv) > 6 else None
    deadline = time.time() + 30
    while len(sys.argv) > 7 and not __import__("os").path.exists(sys.argv[7]):
        if time.time() > deadline:
            break
        time.sleep(0.1)

    # framing errors, each on a fresh WebSocket; bob keeps working
    def framing(send, want, name):
        def t():
            w = WS(HTTP)
            w.open(HOST)
            w.expect(lambda e: e.tag == q(NS_STREAMS, "features"))
            send(w)
            cond, closed = stream_error(w)
            assert cond == want, "got <%s/>, wanted <%s/>" % (cond, want)
            assert closed, "the WebSocket did not close"
            return tcp_alive(bob)
        check(name, t)

    framing(lambda w: w.send("<presence xmlns='jabber:client'/><presence "
                             "xmlns='jabber:client'/>"),
            "not-well-formed", "two elements in one message: <not-well-formed/>, the "
            "WebSocket closes, a TCP client is unaffected")
    framing(lambda w: w.send("<message xmlns='jabber:client'><body>half"),
            "not-well-formed", "half an element in a message: <not-well-formed/>")
    def tcp_header():
        w = WS(HTTP)
        w.send("<stream:stream xmlns='jabber:client' xmlns:stream='%s' to='%s' "
               "version='1.0'>" % (NS_STREAMS, HOST))
        cond, closed = stream_error(w)
        assert closed
        return cond == "not-well-formed" and tcp_alive(bob)
    check("a TCP stream header instead of <open/> (not RFC 7395 framing): "
          "<not-well-formed/>", tcp_header)

    def stanza_first():
        w = WS(HTTP)
        w.send("<message xmlns='jabber:client' to='bob@%s'><body>x</body></message>" % HOST)
        cond, closed = stream_error(w)
        return cond == "not-authorized" and closed and tcp_alive(bob)
    check("a stanza before <open/>: <not-authorized/>", stanza_first)

    def wrong_ns():
        w = WS(HTTP)
        w.send("<open xmlns='jabber:client' to='%s' version='1.0'/>" % HOST)
        cond, closed = stream_error(w)
        return cond == "invalid-namespace" and closed
    check("<open/> in another namespace than the framing one: <invalid-namespace/> "
          "(RFC 7395 §3.3.2)", wrong_ns)

    def xml_decl():
        w = WS(HTTP)
        w.send("<?xml version='1.0'?><open xmlns='%s' to='%s' version='1.0'/>"
               % (NS_FRAMING, HOST))
        w.expect(lambda e: e.tag == q(NS_FRAMING, "open"), what="<open/>")
        w.expect(lambda e: e.tag == q(NS_STREAMS, "features"))
        w.send("<?xml version='1.0' encoding='UTF-8'?>\n<iq xmlns='jabber:client' "
               "type='get' id='d1' to='%s'><query xmlns='jabber:iq:version'/></iq>" % HOST)
        e = w.expect(lambda e: e.get("id") == "d1" or e.tag == q(NS_STREAMS, "error"))
        w.sock.close()
        # unauthenticated: the IQ is refused, but as a stanza, not a parse error
        return e.tag != q(NS_STREAMS, "error") or \
            e.find(q("urn:ietf:params:xml:ns:xmpp-streams", "not-authorized")) is not None
    check("an XML declaration in front of a message is accepted (RFC 7395 §3.3.3: NOT "
          "RECOMMENDED, not forbidden)", xml_decl)

    framing(lambda w: w.frame(b"<presence xmlns='jabber:client'/>", opcode=2),
            "bad-format", "a binary frame: <bad-format/>, a TCP client is unaffected")

    def big_fragments(w):
        # the second fragment's header says 10,000 bytes more: past 16 KiB,
        # refused before its payload comes (only 100 bytes of it are sent)
        w.frame("<message xmlns='jabber:client'><body>" + "x" * 10000, fin=False)
        w.frame("y" * 10000, opcode=0, fin=False, send=100)
    framing(big_fragments, "policy-violation", "fragments past the stanza-size limit "
            "(16 KiB here): <policy-violation/> before the message is whole")
    framing(lambda w: w.send("<message xmlns='jabber:client'><body>" + "z" * 17000 +
                             "</body></message>"),
            "policy-violation", "one message past the stanza-size limit: <policy-violation/>")
    framing(lambda w: w.send("<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, HOST)),
            "not-well-formed", "a second <open/> without a restart: <not-well-formed/>")

    def bad_utf8():
        w = WS(HTTP)
        w.open(HOST)
        w.expect(lambda e: e.tag == q(NS_STREAMS, "features"))
        w.frame(b"<presence xmlns='jabber:client'>\xff\xfe</presence>")
        try:
            while True:
                w.read_frame(10)
        except Closed:
            pass
        except Exception:
            pass
        return tcp_alive(bob)
    check("invalid UTF-8 in a text frame: the WebSocket closes, a TCP client is "
          "unaffected", bad_utf8)

    def logout():
        alice.send("<close xmlns='%s'/>" % NS_FRAMING)
        e = alice.expect(lambda e: e.tag == q(NS_FRAMING, "close"), what="<close/>")
        frames = []
        try:
            while True:
                frames.append(alice.read_frame(5))
                if frames[-1][0] == 8:
                    break
        except Closed:
            pass
        assert frames and frames[-1][0] == 8, frames
        return frames[-1][1][:2] == b"\x03\xe8"
    check("<close/> is answered with <close/> and a WebSocket close 1000", logout)

    # abrupt drop: a subscribed contact learns that the web client is gone
    carol = WS(HTTP)

    def drop():
        cj = carol.login("carol", PASS, HOST, "web")
        carol.presence()
        subscribe(carol, bob, "carol@" + HOST, "bob@" + HOST)
        carol.presence()
        bob.expect(lambda e: e.tag == "{jabber:client}presence" and e.get("from") == cj
                   and e.get("type") is None, what="carol's presence")
        carol.sock.shutdown(socket.SHUT_RDWR)
        carol.sock.close()
        p = bob.expect(lambda e: e.tag == "{jabber:client}presence" and e.get("from") == cj
                       and e.get("type") == "unavailable", timeout=20,
                       what="carol's unavailable presence")
        return p is not None
    check("an abrupt drop of the WebSocket: the contact gets unavailable presence", drop)

    # XEP-0198: a WebSocket session resumed over TCP, then the other way round
    def resume(first, second, name_a, name_b):
        a = first()
        aj = a.login("dave", PASS, HOST, "m", sm=True)
        a.presence()
        a.send("<r xmlns='%s'/>" % NS_SM)
        a.expect(lambda e: e.tag == q(NS_SM, "a"), what="<a/>")
        a.sock.shutdown(socket.SHUT_RDWR)
        a.sock.close()
        time.sleep(0.5)
        bob.send("<message xmlns='jabber:client' to='%s' type='chat'><body>while you "
                 "were away (%s)</body></message>" % (aj, name_a))
        time.sleep(0.5)
        b = second()
        b.login("dave", PASS, HOST, resource=None)
        b.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, a.sm_id))
        b.expect(lambda e: e.tag == q(NS_SM, "resumed"), what="<resumed/>")
        m = b.expect(lambda e: e.tag == "{jabber:client}message", what="the kept message")
        b.sm_id = a.sm_id
        return m.findtext("{jabber:client}body") == "while you were away (%s)" % name_a, b

    def ws_to_tcp():
        good, b = resume(lambda: WS(HTTP), lambda: TCP(C2S), "ws", "tcp")
        b.close()
        return good
    check("XEP-0198: a WebSocket session resumed over TCP gets what came meanwhile",
          ws_to_tcp)

    def tcp_to_ws():
        good, b = resume(lambda: TCP(C2S), lambda: WS(HTTP), "tcp", "ws")
        b.close()
        return good
    check("XEP-0198: a TCP session resumed over WebSocket gets what came meanwhile",
          tcp_to_ws)

    def server_ping():
        w = WS(HTTP)
        w.login("erin", PASS, HOST, "idle")
        deadline = time.time() + 25
        while time.time() < deadline:
            op, p = w.read_frame(deadline - time.time())
            if op == 9:
                w.frame(p, opcode=10)
                ok_ = tcp_alive(bob)
                w.close()
                return ok_
        return False
    check("an idle WebSocket gets a WebSocket ping from the server (idle-timeout)",
          server_ping)
    bob.close()


try:
    main()
except Exception:
    ok(False, "ws_check ran to its end", traceback.format_exc())
