// websuckets.js speaking MessagePack against a real server: tests/test_js_msgpack.py starts one and sets
// WEBSUCKETS_MSGPACK_URL. The codec, @msgpack/msgpack, is a dev dependency of tests/node.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

import { WebSucketsError } from "../../../websuckets/js/websuckets.js";
import { clientsOf, next } from "../helpers.mjs";

const msgpack = createRequire(new URL("../../node/package.json", import.meta.url))("@msgpack/msgpack");

const URL_ = process.env.WEBSUCKETS_MSGPACK_URL;
assert.ok(URL_, "set WEBSUCKETS_MSGPACK_URL to a running test server (tests/test_js_msgpack.py does)");

const client = clientsOf(URL_, { minDelay: 20, maxDelay: 200, timeout: 3000 });

test("with a codec, the client offers websuckets.v1.msgpack and the server selects it", async () => {
  const packed = client({ msgpack });
  assert.equal(await packed.request("protocol"), "websuckets.v1.msgpack");
  const plain = client();
  assert.equal(await plain.request("protocol"), null, "without one, nothing changes: JSON");
});

test("bytes travel raw both ways, validated by the server's model", async () => {
  const one = client({ msgpack });
  const data = new Uint8Array([255, 0, 1]);
  const reply = await one.request("blob echo", { name: "a", data });
  assert.equal(reply.name, "a");
  assert.deepEqual(new Uint8Array(reply.data), data);
});

test("errors have the same names as over JSON", async () => {
  const one = client({ msgpack });
  await assert.rejects(one.request("nope"), (error) => error instanceof WebSucketsError && error.code === "unknown_command");
  await assert.rejects(
    one.request("blob echo", { name: 1 }),
    (error) => error instanceof WebSucketsError && error.code === "validation_error",
  );
});

test("a stream's items and end come in MessagePack", async () => {
  const one = client({ msgpack });
  const items = [];
  for await (const message of one.stream("count", { upto: 3 })) items.push(message.payload);
  assert.deepEqual(items, [0, 1, 2]);
});

test("a room of JSON and MessagePack members: each gets the broadcast in its format", async () => {
  const packed = client({ msgpack });
  const plain = client();
  await packed.request("join", { room: "mixed" });
  await plain.request("join", { room: "mixed" });
  const [got, gotPlain] = [next(packed, "said"), next(plain, "said")];
  await plain.send("say", { room: "mixed" });
  assert.deepEqual(new Uint8Array((await got).blob), new Uint8Array([104, 105, 0]), "raw bytes");
  assert.equal((await gotPlain).blob, "hi\u0000", "bytes as pydantic writes them to JSON");
});
