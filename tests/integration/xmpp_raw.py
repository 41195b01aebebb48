"""xmpp_raw.py - small raw XMPP clients for the integration tests (stdlib only).

A TCP client (RFC 6120 stream, SCRAM-SHA-1), a WebSocket client (RFC 6455
frames written by hand, so that tests can also send what no library would: a
binary frame, two stanzas in one message, oversized fragments) speaking RFC
7395, and the SCRAM-SHA-1 client both use. Every wait is bounded.
"""
import base64
import hashlib
import hmac
import os
import socket
import struct
import time
import xml.etree.ElementTree as ET

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_SM = "urn:xmpp:sm:3"


def q(ns, name):
    return "{%s}%s" % (ns, name)


class Scram:
    """SCRAM-SHA-1 client (RFC 5802), no channel binding."""

    def __init__(self, user, password):
        self.user, self.password = user, password
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.bare = "n=%s,r=%s" % (user, self.nonce)

    def first(self):
        return base64.b64encode(("n,," + self.bare).encode()).decode()

    def final(self, challenge_b64):
        chal = base64.b64decode(challenge_b64).decode()
        f = dict(kv.split("=", 1) for kv in chal.split(","))
        salted = hashlib.pbkdf2_hmac("sha1", self.password.encode(),
                                     base64.b64decode(f["s"]), int(f["i"]))
        ckey = hmac.new(salted, b"Client Key", hashlib.sha1).digest()
        skey = hmac.new(salted, b"Server Key", hashlib.sha1).digest()
        without = "c=biws,r=" + f["r"]
        auth = ",".join([self.bare, chal, without]).encode()
        sig = hmac.new(hashlib.sha1(ckey).digest(), auth, hashlib.sha1).digest()
        self.server_sig = hmac.new(skey, auth, hashlib.sha1).digest()
        proof = bytes(a ^ b for a, b in zip(ckey, sig))
        return base64.b64encode((without + ",p=" +
                                 base64.b64encode(proof).decode()).encode()).decode()


class Closed(Exception):
    pass


class Client:
    """What both transports share: elements in, elements out, login."""

    timeout = 10

    def expect(self, pred=lambda e: True, timeout=None, what="an element"):
        """The next element for which pred holds; others are kept in order."""
        deadline = time.time() + (timeout or self.timeout)
        for i, e in enumerate(self.kept):
            if pred(e):
                return self.kept.pop(i)
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no %s within %ss" % (what, timeout or self.timeout))
            e = self.read_element(left)
            if pred(e):
                return e
            self.kept.append(e)

    def login(self, user, password, host, resource="r", sm=False):
        self.open(host)
        feats = self.expect(lambda e: e.tag == q(NS_STREAMS, "features"), what="features")
        mechs = [m.text for m in feats.iter(q(NS_SASL, "mechanism"))]
        assert "SCRAM-SHA-1" in mechs, mechs
        s = Scram(user, password)
        self.send("<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>" % (NS_SASL, s.first()))
        ch = self.expect(lambda e: e.tag in (q(NS_SASL, "challenge"), q(NS_SASL, "failure")))
        assert ch.tag == q(NS_SASL, "challenge"), ET.tostring(ch)
        self.send("<response xmlns='%s'>%s</response>" % (NS_SASL, s.final(ch.text)))
        ok = self.expect(lambda e: e.tag in (q(NS_SASL, "success"), q(NS_SASL, "failure")))
        assert ok.tag == q(NS_SASL, "success"), ET.tostring(ok)
        self.restart()
        self.open(host)
        feats = self.expect(lambda e: e.tag == q(NS_STREAMS, "features"), what="features")
        self.features = feats
        if resource is None:
            return None
        self.send("<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='%s'>"
                  "<resource>%s</resource></bind></iq>" % (NS_BIND, resource))
        r = self.expect(lambda e: e.get("id") == "b1", what="the bind result")
        self.jid = r.find(".//" + q(NS_BIND, "jid")).text
        if sm:
            self.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
            en = self.expect(lambda e: e.tag == q(NS_SM, "enabled"), what="<enabled/>")
            self.sm_id = en.get("id")
        return self.jid

    def presence(self):
        self.send("<presence xmlns='jabber:client'/>")

    def iq_ping(self, to, id_="p1"):
        self.send("<iq xmlns='jabber:client' type='get' id='%s' to='%s'>"
                  "<ping xmlns='urn:xmpp:ping'/></iq>" % (id_, to))
        return self.expect(lambda e: e.get("id") == id_, what="the ping result")


class TCP(Client):
    def __init__(self, port, addr="127.0.0.1"):
        self.sock = socket.create_connection((addr, port), timeout=self.timeout)
        self.kept = []
        self._parser()

    def _parser(self):
        self.parser = ET.XMLPullParser(("start", "end"))
        self.depth = 0

    def open(self, host):
        self.sock.sendall(("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                           "xmlns:stream='%s' to='%s' version='1.0'>" % (NS_STREAMS, host))
                          .encode())

    def restart(self):
        self._parser()

    def send(self, s):
        self.sock.sendall(s.encode() if isinstance(s, str) else s)

    def read_element(self, timeout):
        deadline = time.time() + timeout
        while True:
            for ev, el in self.parser.read_events():
                if ev == "start":
                    self.depth += 1
                    if self.depth == 1:
                        self.header = el
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        return el
                    if self.depth == 0:
                        raise Closed("</stream:stream>")
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("nothing read within %ss" % timeout)
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise Closed("connection closed")
            self.parser.feed(data)

    def close(self):
        try:
            self.sock.sendall(b"</stream:stream>")
        except OSError:
            pass
        self.sock.close()


class WS(Client):
    """RFC 6455 client with the RFC 7395 subprotocol."""

    def __init__(self, port, path="/xmpp-websocket", protocol="xmpp", origin=None,
                 addr="127.0.0.1", host="localhost"):
        self.sock = socket.create_connection((addr, port), timeout=self.timeout)
        self.kept = []
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n" % (path, host, key))
        if protocol:
            req += "Sec-WebSocket-Protocol: %s\r\n" % protocol
        if origin:
            req += "Origin: %s\r\n" % origin
        self.sock.sendall((req + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            d = self.sock.recv(1)
            if not d:
                raise Closed("closed during the handshake")
            head += d
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for l in lines[1:]:
            if ":" in l:
                k, v = l.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.accept_ok = self.headers.get("sec-websocket-accept") == want

    def frame(self, payload, opcode=1, fin=True, send=None):
        """One masked frame; send: only the first bytes of it after the header."""
        if isinstance(payload, str):
            payload = payload.encode()
        mask = os.urandom(4)
        n = len(payload)
        h = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            h += bytes([0x80 | n])
        elif n < 65536:
            h += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            h += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(h + mask + (masked if send is None else masked[:send]))

    def send(self, s):
        self.frame(s)

    def open(self, host):
        self.send("<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, host))

    def restart(self):
        pass

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no frame")
            self.sock.settimeout(left)
            d = self.sock.recv(65536)
            if not d:
                raise Closed("connection closed")
            self.buf += d

    def read_frame(self, timeout):
        """(opcode, payload) of the next frame, as sent (unmasked)."""
        deadline = time.time() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "a server frame must not be masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload

    def read_element(self, timeout):
        deadline = time.time() + timeout
        while True:
            op, p = self.read_frame(max(0.01, deadline - time.time()))
            if op == 1:
                return ET.fromstring(p)
            if op == 8:
                self.close_code = struct.unpack(">H", p[:2])[0] if len(p) >= 2 else None
                raise Closed("WebSocket close")
            if op == 9:
                self.frame(p, opcode=10)   # answer pings

    def close(self):
        try:
            self.send("<close xmlns='%s'/>" % NS_FRAMING)
            self.sock.close()
        except OSError:
            pass
