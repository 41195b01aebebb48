// tests/integration/xmppjs_check.mjs - @xmpp/client, a real web client library,
// against Parley's WebSocket endpoint (RFC 7395): SASL (which mechanism it
// picks), bind, XEP-0198, a chat with a TCP client and back, a ping and a
// disco#info, then stop(), which must end with the server's <close/> and a
// clean WebSocket close. Run by xmppjs.test, which installed the library in a
// cache directory (the first argument); prints TAP lines for lib.sh's count().
// Every wait is bounded and the script always exits.
//
// node xmppjs_check.mjs NPM_DIR HTTP_PORT HOST PASSWORD PEER_JID ONLINE_FILE LOOKED_FILE
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const [dir, port, host, password, peer, onlineFile, lookedFile] = process.argv.slice(2);
const T = Number(process.env.PARLEY_TEST_TIMEOUT_MS || 5000);
const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
const NS_STREAMS = "http://etherx.jabber.org/streams";
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";

let failed = 0;
const ok = (name) => console.log(`ok - ${name}`);
const notOk = (name, ...why) => {
	failed++;
	console.log(`not ok - ${name}`);
	for (const w of why)
		for (const l of String(w).split("\n")) console.log(`# ${l}`);
};
const check = (name, cond, ...why) => (cond ? ok(name) : notOk(name, ...why));
const finish = () => process.exit(failed ? 1 : 0);

// The whole run is bounded, whatever the library does.
setTimeout(() => { notOk("the check finished within its time"); finish(); }, 12 * T);

const within = (p, ms, what) => Promise.race([p, new Promise((_, reject) =>
	setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms))]);
async function until(cond, ms) {
	for (const end = Date.now() + ms; Date.now() < end;) {
		if (cond()) return true;
		await new Promise((r) => setTimeout(r, 50));
	}
	return cond();
}

const require = createRequire(join(dir, "package.json"));
const { client, xml } = require("@xmpp/client");
const version = JSON.parse(readFileSync(join(dir, "node_modules/@xmpp/client/package.json")))
	.version;
console.log(`# @xmpp/client ${version} on Node ${process.version}`);

let offered = [], picked = null, opened = null, closedWith = null, disconnect = null;
const errors = [], reconnects = [], inbox = [];
const xmpp = client({
	service: `ws://127.0.0.1:${port}/xmpp-websocket`,
	domain: host,
	resource: "web",
	credentials: async (auth, mechanism) => {
		picked = mechanism;
		await auth({ username: "alice", password });
	},
});
xmpp.timeout = T;	// its own waits (open, close) are 2 s: too short under valgrind
xmpp.on("error", (e) => errors.push(e));
xmpp.on("element", (el) => {
	if (el.is("features", NS_STREAMS) && el.getChild("mechanisms", NS_SASL))
		offered = el.getChild("mechanisms", NS_SASL).getChildElements().map((m) => m.text());
});
xmpp.on("open", (el) => { opened ??= el; });
xmpp.on("close", (el) => { closedWith = el; });
xmpp.on("disconnect", (d) => { disconnect = d; });
xmpp.on("stanza", (st) => { if (st.is("message")) inbox.push(st); });
xmpp.reconnect.on("reconnecting", () => reconnects.push(Date.now()));
if (process.env.PARLEY_TEST_XMPPJS_DEBUG) {
	xmpp.on("input", (s) => console.error(`IN  ${s}`));
	xmpp.on("output", (s) => console.error(`OUT ${s}`));
}

let online;
try {
	online = await within(xmpp.start(), 4 * T, "online");
	ok(`@xmpp/client logs in over ws://127.0.0.1:${port}/xmpp-websocket as ${online}`);
} catch (e) {
	notOk("@xmpp/client logs in over WebSocket", e.stack || e, ...errors.map(String));
	finish();
}
console.log(`# offered: ${offered.join(" ")}; @xmpp/client picked ${picked}`);
check("it picks SCRAM-SHA-1 among the mechanisms offered", picked === "SCRAM-SHA-1",
      `picked ${picked} of ${offered.join(" ")}`);
check("the bound JID is alice@HOST/web", String(online) === `alice@${host}/web`, `${online}`);
check("Parley's <open/> is in the framing namespace, from the host, version 1.0, with an id",
      opened && opened.is("open", NS_FRAMING) && opened.attrs.from === host &&
      opened.attrs.version === "1.0" && !!opened.attrs.id, opened && opened.toString());
const sm = xmpp.streamManagement;
check("XEP-0198 enabled, resumable (it asked for resume)", sm.enabled && !!sm.id,
      JSON.stringify(sm));

await xmpp.send(xml("presence"));
writeFileSync(onlineFile, `${online}\n`);
if (!await until(() => existsSync(lookedFile), 4 * T))
	notOk("xmppjs.test looked at parleyctl sessions");

// A chat with the TCP client: it answers "echo: " and what it got.
try {
	const body = "hello from @xmpp/client <&> é";
	await xmpp.send(xml("message", { to: peer, type: "chat", id: "m1" }, xml("body", {}, body)));
	const from = (st) => st.attrs.from === peer && st.getChildText("body") !== null;
	if (!await until(() => inbox.some(from), 4 * T)) throw new Error("no message back");
	const got = inbox.find(from);
	check("a message to the TCP client comes back from it (the TCP client's echo)",
	      got.attrs.type === "chat" && got.getChildText("body") === `echo: ${body}` &&
	      got.attrs.to === String(online), got.toString());
} catch (e) {
	notOk("a message to the TCP client and its answer", e.stack || e);
}

try {
	const r = await xmpp.iqCaller.request(xml("iq", { type: "get", to: host },
		xml("ping", { xmlns: "urn:xmpp:ping" })), 2 * T);
	check("XEP-0199 ping to the server: a result", r.attrs.type === "result", r.toString());
} catch (e) {
	notOk("XEP-0199 ping to the server: a result", e.stack || e);
}
try {
	const q = await xmpp.iqCaller.get(xml("query",
		{ xmlns: "http://jabber.org/protocol/disco#info" }), host, 2 * T);
	const feats = q.getChildren("feature").map((f) => f.attrs.var);
	check("disco#info of the server: a result listing urn:xmpp:ping",
	      feats.includes("urn:xmpp:ping"), q.toString());
} catch (e) {
	notOk("disco#info of the server: a result", e.stack || e);
}

// stop(): <close/>, the server's <close/>, then the WebSocket closes cleanly.
try {
	const el = await within(xmpp.stop(), 4 * T, "end of stop()");
	check("xmpp.stop(): Parley answers <close/> with <close/> (RFC 7395 §3.6)",
	      el && el.is("close", NS_FRAMING), `stop() returned ${el}; close: ${closedWith}`);
} catch (e) {
	notOk("xmpp.stop() ends", e.stack || e);
}
check("then the WebSocket closes cleanly (a close frame each way) and it is offline",
      disconnect && disconnect.clean && xmpp.status === "offline",
      `status ${xmpp.status}; disconnect ${JSON.stringify(disconnect && {
	      clean: disconnect.clean, code: disconnect.event?.code })}`);
await new Promise((r) => setTimeout(r, 1200));	// reconnect's delay: none must start
check("no error event and no reconnection all along", !errors.length && !reconnects.length,
      ...errors.map((e) => e.stack || e), `${reconnects.length} reconnection(s)`);
finish();
