// websuckets.js against a real server: tests/test_js_client.py starts one and sets WEBSUCKETS_URL.
// Run by `node --test` (Node 20 needs --experimental-websocket for the global WebSocket).
import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, WebSucketsClient, WebSucketsError } from "../../websuckets/js/websuckets.js";
import { clientsOf, next } from "./helpers.mjs";

const URL = process.env.WEBSUCKETS_URL;
assert.ok(URL, "set WEBSUCKETS_URL to a running test server (tests/test_js_client.py does)");
const AUTH_URL = process.env.WEBSUCKETS_AUTH_URL; // the same app, with HandshakeAuth(required=False)

const FAST = { minDelay: 20, maxDelay: 200, timeout: 3000 };
const client = clientsOf(URL, FAST);

test("request resolves with the reply's payload, even when sent before the connection opens", async () => {
  const echo = client();
  assert.equal(echo.connected, false);
  assert.deepEqual(await echo.request("echo", { n: 1 }), { n: 1 });
  assert.deepEqual(await echo.request("echo", ["a", null]), ["a", null]);
  assert.equal(echo.connected, true);
});

test("request rejects with the server's error: its name as code, its details and payload", async () => {
  const failing = client();
  await assert.rejects(failing.request("fail", { why: "asked to" }), (error) => {
    assert.ok(error instanceof WebSucketsError);
    assert.equal(error.code, "nope");
    assert.deepEqual(error.details, { why: "asked to" });
    assert.equal(error.payload.event, "fail");
    assert.match(error.message, /^nope: /);
    return true;
  });
  await assert.rejects(failing.request("no such command"), { code: "unknown_command" });
  assert.deepEqual(await failing.request("echo", 2), 2, "the connection stays usable after errors");
});

test("request times out when no event carries its id back", async () => {
  const waiting = client();
  await assert.rejects(waiting.request("push", "no id", { timeout: 200 }), { code: "timeout" });
});

test("on() gets events by name until unsubscribed; send() needs no answer", async () => {
  const listener = client();
  const seen = [];
  const stop = listener.on("pushed", (payload, message) => seen.push([payload, message.event]));
  const arrived = next(listener, "pushed");
  listener.send("push", { n: 1 });
  assert.deepEqual(await arrived, { n: 1 });
  assert.deepEqual(seen, [[{ n: 1 }, "pushed"]]);

  stop();
  const again = next(listener, "pushed");
  listener.send("push", { n: 2 });
  assert.deepEqual(await again, { n: 2 });
  assert.equal(seen.length, 1, "the unsubscribed listener was not called");
});

test("errors of commands sent without request() reach on('error')", async () => {
  const listener = client();
  const error = next(listener, "error");
  listener.send("fail", { why: "fire and forget" });
  const payload = await error;
  assert.equal(payload.name, "nope");
  assert.deepEqual(payload.details, { why: "fire and forget" });
});

test("the token from 'new token' is kept and sent with protected commands", async () => {
  const user = client();
  await assert.rejects(user.request("whoami"), { code: "unauthorized" });
  assert.equal(user.token, null);
  const reply = await user.request("login", { login: "alice" });
  assert.equal(user.token, reply.token);
  assert.equal(await user.request("whoami"), "alice");

  const other = client({ token: reply.token }); // a token given up front works on a new connection
  assert.equal(await other.request("whoami"), "alice");
  other.token = null;
  await assert.rejects(other.request("whoami"), { code: "unauthorized" });
});

test("when the server drops the connection, pending requests fail and the client reconnects", async () => {
  const resilient = client();
  await resilient.request("login", { login: "bob" });
  const closed = next(resilient, "close");
  const reopened = next(resilient, "open");
  await assert.rejects(resilient.request("drop"), { code: "disconnected" });
  const info = await closed;
  assert.equal(info.code, 1012);
  assert.ok(info.reconnectIn >= 0 && info.reconnectIn <= FAST.minDelay, `delay ${info.reconnectIn}`);
  await reopened;
  assert.equal(await resilient.request("whoami"), "bob", "the kept token verifies the new connection");
});

test("commands sent while reconnecting wait for the new connection", async () => {
  const patient = client({ minDelay: 300 });
  await patient.request("echo", 0);
  const closed = next(patient, "close");
  patient.send("drop");
  await closed;
  assert.equal(patient.connected, false);
  assert.equal(await patient.request("echo", "after"), "after");
});

test("close() stops for good and rejects what is pending", async () => {
  const closing = client();
  await closing.request("echo", 1);
  const pending = closing.request("slow", 1000);
  const closed = next(closing, "close");
  closing.close();
  await assert.rejects(pending, { code: "closed" });
  assert.equal((await closed).reconnectIn, null);
  await assert.rejects(closing.request("echo", 1), { code: "closed" });
});

test("connect() resolves once open, and rejects when the server cannot be reached", async () => {
  const opened = await connect(URL, FAST);
  client.track(opened);
  assert.equal(opened.connected, true);
  await assert.rejects(connect("ws://127.0.0.1:1/", { reconnect: false }), { code: "closed" });
  await assert.rejects(connect("ws://127.0.0.1:1/", { ...FAST, openTimeout: 300 }), { code: "timeout" });
});

test("reconnection delays grow exponentially, capped, with jitter", () => {
  const probe = new WebSucketsClient(URL, { minDelay: 100, maxDelay: 1000, factor: 2, jitter: 0.5 });
  probe.close();
  for (let attempt = 0; attempt < 8; attempt++) {
    const full = Math.min(1000, 100 * 2 ** attempt);
    for (let draw = 0; draw < 20; draw++) {
      const delay = probe._backoff(attempt);
      assert.ok(delay >= full / 2 && delay <= full, `attempt ${attempt}: ${delay} not in [${full / 2}, ${full}]`);
    }
  }
  const steady = new WebSucketsClient(URL, { minDelay: 100, jitter: 0 });
  steady.close();
  assert.deepEqual([0, 1, 2].map((attempt) => steady._backoff(attempt)), [100, 200, 400]);
});

test("the client learns its own id from the server's welcome event", async () => {
  const me = client();
  const welcome = await next(me, "welcome");
  assert.equal(me.clientId, welcome.client_id);
  assert.equal(await me.request("my id"), me.clientId);
});

test("handshakeToken: the token opens the connection as the subprotocol, verified before any command", async () => {
  assert.ok(AUTH_URL, "set WEBSUCKETS_AUTH_URL (tests/test_js_client.py does)");
  const first = client({}, AUTH_URL);
  const { token } = await first.request("login", { login: "carol" });
  const carol = client({ token, handshakeToken: true }, AUTH_URL);
  assert.deepEqual(await carol.request("who"), { id: "carol", subprotocol: "websuckets" });
  const plain = client({ token }, AUTH_URL); // without handshakeToken, nothing is verified until a command
  assert.deepEqual(await plain.request("who"), { id: null, subprotocol: null });
  const stale = client({ token: "0".repeat(32), handshakeToken: true, maxRetries: 0 }, AUTH_URL);
  const closed = await next(stale, "close");
  assert.equal(closed.code, 1006, "the server refused the handshake (401)");
});
