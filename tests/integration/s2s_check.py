#!/usr/bin/python3
# tests/integration/s2s_check.py - two clients on two federated servers (any of
# Parley, Prosody, ejabberd), with slixmpp (Debian's python3-slixmpp): user A
# logs in on server X and user B on server Y, and each way, bounded in time:
# a chat message arrives; a presence subscription is asked for, arrives and is
# approved, both rosters then say subscription="both" and the contact's
# presence arrives; an IQ ping (XEP-0199) to the other user's full JID and a
# disco#info to the other server get results. With --expect-fail (a peer that
# must be refused, e.g. its certificate is wrong): a message and an IQ from A
# do not reach B and A gets an error back. Prints TAP lines without numbers
# (the .test counts them with lib.sh's count). It shares no code with the
# servers. c2s is whatever the server offers on loopback: STARTTLS is not
# asked for and certificates are not checked (c2s is not what is tested).
#
#   s2s_check.py [--expect-fail] [--label L] [--timeout S]
#                JID_A PASS_A IP:PORT JID_B PASS_B IP:PORT
import argparse
import asyncio
import logging
import ssl
import sys
import time
import uuid

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

failures = 0


def report(ok, name, why=""):
    global failures
    print(("ok - " if ok else "not ok - ") + name, flush=True)
    if not ok:
        failures += 1
        for line in str(why).splitlines()[:20]:
            print("# " + line, flush=True)


class Client:
    """One logged-in account and every message and presence it received."""

    def __init__(self, jid, password, addr, timeout):
        self.c = slixmpp.ClientXMPP(jid + "/s2s-check", password)
        self.c.register_plugin("xep_0030")
        self.c.register_plugin("xep_0199")
        self.c.ssl_context.check_hostname = False
        self.c.ssl_context.verify_mode = ssl.CERT_NONE
        # The test approves subscriptions itself: that is what it checks
        # (None: left to the application; False would refuse them).
        self.c.roster.auto_authorize = None
        self.c.roster.auto_subscribe = False
        self.messages, self.presences = [], []
        self.c.register_handler(Callback("s2s-check messages",
                                         MatchXPath("{jabber:client}message"),
                                         self.messages.append))
        self.c.register_handler(Callback("s2s-check presences",
                                         MatchXPath("{jabber:client}presence"),
                                         self.presences.append))
        self.failed = None
        self.c.add_event_handler("failed_auth", lambda _: self.fail("authentication failed"))
        self.c.add_event_handler("connection_failed", lambda e: self.fail("connection: %s" % e))
        host, port = addr.rsplit(":", 1)
        self.addr, self.timeout = (host, int(port)), timeout
        self.bare = jid

    def fail(self, why):
        self.failed = self.failed or why

    async def login(self):
        self.c.connect(self.addr, force_starttls=False, disable_starttls=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.timeout:
            if self.failed:
                raise RuntimeError(self.failed)
            if self.c.authenticated and self.c.sessionstarted:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("no session in %s s" % self.timeout)
        self.c.client_roster.auto_authorize = None
        self.c.client_roster.auto_subscribe = False
        # As a client does (RFC 6121 2.2): a session that has not asked for its roster
        # is not "interested", and Prosody sends it no subscription approvals.
        await self.c.get_roster(timeout=self.timeout)
        self.c.send_presence()

    @property
    def full(self):
        return self.c.boundjid.full


async def until(pred, timeout):
    """The first true value of pred() within timeout seconds, else None."""
    t0 = time.monotonic()
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            return None
        await asyncio.sleep(0.05)


def bare(j):
    return str(j).split("/")[0]


async def message(x, y, xn, yn, label, t):
    body = "s2s %s to %s %s" % (xn, yn, uuid.uuid4().hex[:12])
    t0 = time.monotonic()
    x.c.send_message(mto=y.bare, mbody=body, mtype="chat")
    m = await until(lambda: [m for m in y.messages if m["body"] == body], t)
    report(bool(m) and bare(m[0]["from"]) == x.bare,
           "%s: a chat message from %s reaches %s (%.2f s)" % (label, xn, yn,
                                                              time.monotonic() - t0),
           "not within %s s; %s got: %s" % (t, yn, [str(m) for m in y.messages][-3:]))


async def subscribe(x, y, xn, yn, label, t):
    """x asks for y's presence, y approves."""
    x.c.send_presence(pto=y.bare, ptype="subscribe")
    s = await until(lambda: [p for p in y.presences if p["type"] == "subscribe"
                             and bare(p["from"]) == x.bare], t)
    report(bool(s), "%s: %s's subscription request reaches %s" % (label, xn, yn),
           "%s got: %s" % (yn, [str(p) for p in y.presences][-3:]))
    if not s:
        return False
    y.c.send_presence(pto=x.bare, ptype="subscribed")
    a = await until(lambda: [p for p in x.presences if p["type"] == "subscribed"
                             and bare(p["from"]) == y.bare], t)
    report(bool(a), "%s: %s's approval reaches %s" % (label, yn, xn),
           "%s got: %s" % (xn, [str(p) for p in x.presences][-3:]))
    return bool(a)


async def roster_both(x, y, xn, yn, label, t):
    async def get():
        try:
            await x.c.get_roster(timeout=t)
        except (IqError, IqTimeout):
            return None
        return x.c.client_roster[y.bare]["subscription"] == "both"
    sub = await until(lambda: x.c.client_roster.has_jid(y.bare) and
                      x.c.client_roster[y.bare]["subscription"] == "both", t / 3)
    if not sub:
        sub = await get()
    report(bool(sub), "%s: %s's roster has %s with subscription both" % (label, xn, yn),
           "subscription: %s" % (x.c.client_roster[y.bare]["subscription"]
                                 if x.c.client_roster.has_jid(y.bare) else "no item"))
    p = await until(lambda: [p for p in x.presences if p["type"] == "available"
                             and bare(p["from"]) == y.bare], t)
    report(bool(p), "%s: %s's presence (available) reaches %s" % (label, yn, xn))


async def iqs(x, y, xn, yn, label, t):
    t0 = time.monotonic()
    try:
        await x.c["xep_0199"].ping(jid=y.full, timeout=t)
        report(True, "%s: a ping from %s to %s's full JID gets a result (%.2f s)"
               % (label, xn, yn, time.monotonic() - t0))
    except (IqError, IqTimeout) as e:
        report(False, "%s: a ping from %s to %s's full JID gets a result" % (label, xn, yn),
               "%s: %s" % (type(e).__name__, getattr(e, "iq", "")))
    domain = y.bare.split("@")[1]
    try:
        r = await x.c["xep_0030"].get_info(jid=domain, timeout=t, cached=False)
        ids = [i[0] for i in r["disco_info"]["identities"]]
        report("server" in ids, "%s: disco#info from %s to %s's server (%s) gets a result "
               "with identity server/*" % (label, xn, yn, domain), "identities: %s" % ids)
    except (IqError, IqTimeout) as e:
        report(False, "%s: disco#info from %s to %s's server (%s) gets a result"
               % (label, xn, yn, domain), "%s: %s" % (type(e).__name__, getattr(e, "iq", "")))


async def refused(x, y, xn, yn, label, t):
    """Nothing from x gets to y; x hears of it."""
    body = "s2s refused %s" % uuid.uuid4().hex[:12]
    x.c.send_message(mto=y.bare, mbody=body, mtype="chat")
    err = await until(lambda: [m for m in x.messages if m["type"] == "error"
                               and bare(m["from"]) == y.bare], t)
    cond = err[0]["error"]["condition"] if err else None
    report(bool(err), "%s: a message from %s to %s bounces back with an error (%s)"
           % (label, xn, yn, cond), "no error within %s s" % t)
    try:
        await x.c["xep_0199"].ping(jid=y.bare.split("@")[1], timeout=t)
        report(False, "%s: a ping from %s to %s's server gets an error" % (label, xn, yn),
               "it got a result")
    except IqError as e:
        report(True, "%s: a ping from %s to %s's server gets an error (%s)"
               % (label, xn, yn, e.iq["error"]["condition"]))
    except IqTimeout:
        report(False, "%s: a ping from %s to %s's server gets an error" % (label, xn, yn),
               "no answer within %s s" % t)
    report(not [m for m in y.messages if m["body"] == body],
           "%s: the message from %s does not reach %s" % (label, xn, yn))


async def run(a):
    label, t = a.label, a.timeout
    x = Client(a.jid_a, a.pass_a, a.addr_a, t)
    y = Client(a.jid_b, a.pass_b, a.addr_b, t)
    xn, yn = a.jid_a, a.jid_b
    for c, n in ((x, xn), (y, yn)):
        try:
            await c.login()
            report(True, "%s: %s logs in at %s" % (label, n, "%s:%d" % c.addr))
        except Exception as e:
            report(False, "%s: %s logs in at %s" % (label, n, "%s:%d" % c.addr), e)
            return
    if a.expect_fail:
        await refused(x, y, xn, yn, label, t)
    else:
        await message(x, y, xn, yn, label, t)
        await message(y, x, yn, xn, label, t)
        ok1 = await subscribe(x, y, xn, yn, label, t)
        ok2 = await subscribe(y, x, yn, xn, label, t)
        if ok1 and ok2:
            await roster_both(x, y, xn, yn, label, t)
            await roster_both(y, x, yn, xn, label, t)
        await iqs(x, y, xn, yn, label, t)
        await iqs(y, x, yn, xn, label, t)
    for c in (x, y):
        c.c.disconnect(wait=1)
    await asyncio.sleep(0.2)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--expect-fail", action="store_true")
    p.add_argument("--label", default="s2s")
    p.add_argument("--timeout", type=float, default=15)
    p.add_argument("jid_a"), p.add_argument("pass_a"), p.add_argument("addr_a")
    p.add_argument("jid_b"), p.add_argument("pass_b"), p.add_argument("addr_b")
    a = p.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(run(a), a.timeout * 8))
    except asyncio.TimeoutError:
        report(False, "%s: the checks end within %s s" % (a.label, a.timeout * 8))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
