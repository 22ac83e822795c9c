// websuckets.js against the README's first example (examples/quickstart.py), whose handler answers with
// `socket.send(ClientEvent(...))`: tests/test_js_client.py serves it and sets WEBSUCKETS_README_URL.
import assert from "node:assert/strict";
import { test } from "node:test";

import { clientsOf } from "./helpers.mjs";

const README_URL = process.env.WEBSUCKETS_README_URL;
assert.ok(README_URL, "set WEBSUCKETS_README_URL to a running test server (tests/test_js_client.py does)");

const client = clientsOf(README_URL, { minDelay: 20, maxDelay: 200, timeout: 3000 });

test("request() gets the README example's greeting: its first event carries the command's id", async () => {
  const greeter = client();
  assert.equal(await greeter.request("user hello", { nickname: "alice" }), "hello, alice");
  assert.equal(await greeter.request("user hello", { nickname: "bob" }), "hello, bob");
  await assert.rejects(greeter.request("user hello", {}), { code: "validation_error" });
});
