// websuckets.js streams against a real server: tests/test_js_streams.py starts one and sets WEBSUCKETS_STREAMS_URL.
// Not in tests/js/ itself: tests/test_js_client.py runs the files there against another app.
import assert from "node:assert/strict";
import { test } from "node:test";

import { WebSucketsError } from "../../../websuckets/js/websuckets.js";
import { clientsOf, next } from "../helpers.mjs";

const URL = process.env.WEBSUCKETS_STREAMS_URL;
assert.ok(URL, "set WEBSUCKETS_STREAMS_URL to a running test server (tests/test_js_streams.py does)");

const client = clientsOf(URL, { minDelay: 20, maxDelay: 200, timeout: 3000 });

/** The stream sizes whose generator has been closed on the server, once `n` is among them. */
async function closedOnServer(one, n) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const closed = await one.request("closed");
    if (closed.includes(n)) return closed;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`the stream of ${n} was not closed on the server`);
}

test("for await gets each item as a message with the stream's id, and ends with the stream", async () => {
  const one = client();
  const items = [];
  for await (const message of one.stream("count", { n: 4 })) items.push(message);
  assert.deepEqual(
    items.map((m) => [m.event, m.payload]),
    [0, 1, 2, 3].map((i) => ["count", i]),
  );
  assert.ok(items.every((m) => m.id === items[0].id));
  assert.deepEqual(await one.request("echo", 1), 1, "the connection goes on");
});

test("breaking out of the loop cancels the stream on the server", async () => {
  const one = client();
  const strays = [];
  one.on("count", (payload) => strays.push(payload));
  one.on("websuckets end", (payload) => strays.push(payload));
  for await (const message of one.stream("count", { n: 1001, pause: 10 })) {
    if (message.payload === 2) break;
  }
  await closedOnServer(one, 1001);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(strays, [], "what came for the stream after the loop left it is dropped");
});

test("aborting the signal cancels the stream, and the loop throws the abort's reason", async () => {
  const one = client();
  const controller = new AbortController();
  const seen = [];
  await assert.rejects(
    (async () => {
      for await (const message of one.stream("count", { n: 1002, pause: 10 }, { signal: controller.signal })) {
        seen.push(message.payload);
        if (message.payload === 1) setTimeout(() => controller.abort(new Error("enough")), 0);
      }
    })(),
    { message: "enough" },
  );
  assert.ok(seen.length >= 2);
  await closedOnServer(one, 1002);
});

test("a signal aborted before the loop starts sends nothing", async () => {
  const one = client();
  const controller = new AbortController();
  controller.abort(new Error("never mind"));
  await assert.rejects(one.stream("count", { n: 1 }, { signal: controller.signal }).next(), { message: "never mind" });
});

test("the server's error ends the loop with a WebSucketsError, after the items", async () => {
  const one = client();
  const seen = [];
  await assert.rejects(
    (async () => {
      for await (const message of one.stream("fails")) seen.push(message.payload);
    })(),
    (error) => {
      assert.ok(error instanceof WebSucketsError);
      assert.equal(error.code, "search_failed");
      assert.equal(error.details, "the index is down");
      return true;
    },
  );
  assert.deepEqual(seen, [1]);
  await assert.rejects(one.stream("count", { n: "many" }).next(), { code: "validation_error" });
});

test("a timeout between items ends the loop and cancels the stream", async () => {
  const one = client();
  await assert.rejects(
    (async () => {
      for await (const _ of one.stream("count", { n: 1003, pause: 5000 }, { timeout: 200 })) {
        // the first item comes at once, the second not within 200 ms
      }
    })(),
    { code: "timeout" },
  );
  await closedOnServer(one, 1003);
});

test("a lost connection ends the loop with disconnected; the server closed the generator", async () => {
  const one = client({ reconnect: false });
  await next(one, "open");
  await assert.rejects(
    (async () => {
      for await (const message of one.stream("count", { n: 1004, pause: 10 })) {
        if (message.payload === 1) one._socket.close();
      }
    })(),
    (error) => ["disconnected", "closed"].includes(error.code),
  );
  const other = client();
  await closedOnServer(other, 1004);
});
