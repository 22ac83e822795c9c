// websuckets.js resuming history rooms against a real server: tests/test_js_client.py starts one
// whose rooms named "history:..." keep their last 5 messages, and sets WEBSUCKETS_URL; and one that
// joins every client to its room "lobby" (which keeps 5) when it connects: WEBSUCKETS_LOBBY_URL.
import assert from "node:assert/strict";
import { test } from "node:test";

import { WebSucketsClient } from "../../websuckets/js/websuckets.js";
import { clientsOf, next } from "./helpers.mjs";

const URL = process.env.WEBSUCKETS_URL;
assert.ok(URL, "set WEBSUCKETS_URL to a running test server (tests/test_js_client.py does)");
const LOBBY_URL = process.env.WEBSUCKETS_LOBBY_URL;
assert.ok(LOBBY_URL, "set WEBSUCKETS_LOBBY_URL to a running test server (tests/test_js_client.py does)");
const UNREACHABLE = "ws://127.0.0.1:1/";

const FAST = { minDelay: 20, maxDelay: 100, timeout: 3000 };
const client = clientsOf(URL, FAST);

/**
 * A line between a client and the server: `sent` records the frames the client sends, and while
 * `down` is true the client's connection attempts fail (as if the server were away).
 */
function line() {
  const state = { sent: [], down: false };
  state.WebSocket = class extends WebSocket {
    constructor(url, protocols) {
      super(state.down ? UNREACHABLE : url, protocols);
    }

    send(data) {
      state.sent.push(JSON.parse(data));
      super.send(data);
    }
  };
  return state;
}

/** Every `event` on `emitter` from now on, as `[payload, message]` pairs. */
function collect(emitter, event) {
  const seen = [];
  emitter.on(event, (payload, message) => seen.push([payload, message]));
  return seen;
}

/** A client that joins `room` at every open, as a page does, and its position after the first join. */
async function member(room, options = {}) {
  const joining = client(options);
  const position = next(joining, "websuckets position");
  joining.on("open", () => joining.send("join", { room }));
  return [joining, await position];
}

/** The events of the frames sent after the first one named `event`. */
function sentAfter(wire, event) {
  return wire.sent.slice(wire.sent.findIndex((frame) => frame.event === event) + 1);
}

test("positions come from the join's position event and from each room message", async () => {
  const room = "history:positions";
  const [alice, start] = await member(room);
  assert.equal(start.recovered, null);
  assert.deepEqual(alice.positions.get(room), { epoch: start.epoch, offset: start.offset });
  const said = collect(alice, "said");
  const resumed = collect(alice, "resumed");

  const bob = client();
  await bob.request("say", { room, text: "one" });
  await bob.request("say", { room, text: "two" });
  await alice.request("echo", "in order after the room's messages");
  assert.deepEqual(
    said.map(([text, message]) => [text, message.room, message.epoch, message.offset]),
    [
      ["one", room, start.epoch, start.offset + 1],
      ["two", room, start.epoch, start.offset + 2],
    ],
  );
  assert.deepEqual(alice.positions.get(room), { epoch: start.epoch, offset: start.offset + 2 });
  assert.deepEqual(resumed, [], "a plain join is not a resume");

  await alice.request("join", { room: "no history" });
  const plain = next(alice, "said");
  await bob.request("say", { room: "no history", text: "plain" });
  await plain;
  assert.deepEqual([...alice.positions.keys()], [room], "a room without history has no position");
});

test("duplicates are dropped: a member resuming from an older position gets only its position", async () => {
  const room = "history:duplicates";
  const [alice, start] = await member(room);
  const bob = client();
  for (const text of ["a", "b"]) await bob.request("say", { room, text });
  await alice.request("echo", "after a and b");
  const said = collect(alice, "said");
  const raw = collect(alice, "websuckets position");
  const resumed = next(alice, "resumed");

  const rooms = { [room]: { epoch: start.epoch, offset: start.offset } }; // a and b again
  assert.deepEqual(await alice.request("websuckets resume", { rooms }), { waiting: [] });
  const expected = { room, recovered: true, epoch: start.epoch, offset: start.offset + 2 };
  assert.deepEqual(await resumed, expected);
  assert.deepEqual(said, [], "a and b came again, and were dropped");
  assert.deepEqual(raw.map(([payload]) => payload), [expected], "the raw event reaches its own listeners");
});

test("after the server drops the connection, the client resumes first and gets exactly what it missed", async () => {
  const room = "history:resume";
  const wire = line();
  const [alice, start] = await member(room, { WebSocket: wire.WebSocket });
  const bob = client();
  const seen = next(alice, "said");
  await bob.request("say", { room, text: "seen" });
  await seen;

  const closed = next(alice, "close");
  wire.down = true;
  alice.send("drop");
  assert.equal((await closed).code, 1012);
  alice.send("echo", "queued while away");
  for (const text of ["a", "b", "c"]) await bob.request("say", { room, text });
  const said = collect(alice, "said");
  const resumed = next(alice, "resumed");
  wire.down = false;

  const epoch = start.epoch;
  assert.equal(wire.sent[0].event, "join", "the first open resumes nothing");
  assert.deepEqual(await resumed, { room, recovered: true, epoch, offset: start.offset + 4 });
  assert.deepEqual(said.map(([text]) => text), ["a", "b", "c"]);
  const frames = sentAfter(wire, "drop");
  assert.deepEqual(
    frames.map((frame) => frame.event),
    ["websuckets resume", "join", "echo"],
    "the resume, then the open listener's join, then the queued command",
  );
  assert.deepEqual(frames[0].payload, { rooms: { [room]: { epoch, offset: start.offset + 1 } } });

  const live = next(alice, "said");
  await bob.request("say", { room, text: "live" });
  assert.equal(await live, "live");
});

test("when more was missed than the room keeps, nothing is replayed and recovered is false", async () => {
  const room = "history:overflow";
  const wire = line();
  const [alice, start] = await member(room, { WebSocket: wire.WebSocket });
  const closed = next(alice, "close");
  wire.down = true;
  alice.send("drop");
  await closed;
  const bob = client();
  for (let number = 1; number <= 6; number++) await bob.request("say", { room, text: `${number}` });
  const said = collect(alice, "said");
  const resumed = next(alice, "resumed");
  wire.down = false;

  const expected = { room, recovered: false, epoch: start.epoch, offset: start.offset + 6 };
  assert.deepEqual(await resumed, expected);
  assert.deepEqual(said, []);
  assert.deepEqual(alice.positions.get(room), { epoch: start.epoch, offset: start.offset + 6 });
  const live = next(alice, "said");
  await bob.request("say", { room, text: "live" });
  assert.equal(await live, "live");
});

test("on 'websuckets gap' the client resumes that room from its last position", async () => {
  const room = "history:gap";
  const wire = line();
  const [alice, start] = await member(room, { WebSocket: wire.WebSocket });
  const bob = client();
  await bob.request("say", { room, text: "missed", exclude: alice.clientId }); // a message alice never got
  const said = collect(alice, "said");
  const gap = next(alice, "websuckets gap");
  const resumed = next(alice, "resumed");
  alice.send("gap", { room });

  assert.deepEqual(await gap, { room });
  assert.deepEqual(await resumed, { room, recovered: true, epoch: start.epoch, offset: start.offset + 1 });
  assert.deepEqual(said.map(([text]) => text), ["missed"]);
  const frames = sentAfter(wire, "gap");
  assert.deepEqual(frames.map((frame) => [frame.event, frame.payload]), [
    ["websuckets resume", { rooms: { [room]: { epoch: start.epoch, offset: start.offset } } }],
  ]);
});

test("resume: false keeps no position and sends no resume", async () => {
  const room = "history:off";
  const wire = line();
  const [alice, start] = await member(room, { WebSocket: wire.WebSocket, resume: false });
  assert.equal(start.recovered, null, "the raw event still arrives");
  assert.equal(alice.positions.size, 0);
  const reopened = next(alice, "open");
  alice.send("drop");
  await reopened;
  await alice.request("echo", "reconnected");
  assert.deepEqual(sentAfter(wire, "drop").map((frame) => frame.event), ["join", "echo"]);
});

test("at most 100 rooms are kept, the longest unmoved forgotten; a duplicate is the same epoch, no further", () => {
  const probe = new WebSucketsClient(URL);
  probe.close();
  const said = collect(probe, "said");
  const receive = (room, epoch, offset) =>
    probe._receive(JSON.stringify({ event: "said", payload: offset, room, epoch, offset }));
  for (let number = 0; number <= 100; number++) receive(`r${number}`, "e", 1);
  assert.equal(probe.positions.size, 100);
  assert.equal(probe.positions.has("r0"), false);
  receive("r1", "e", 2);
  receive("r101", "e", 1);
  assert.deepEqual([probe.positions.has("r1"), probe.positions.has("r2")], [true, false]);

  said.length = 0;
  receive("r1", "e", 2); // a duplicate
  receive("r1", "e", 1); // older: a duplicate too
  receive("r1", "f", 1); // another epoch: the room's history was lost, this one is new
  assert.deepEqual(said.map(([offset, message]) => [offset, message.epoch]), [[1, "f"]]);
  assert.deepEqual(probe.positions.get("r1"), { epoch: "f", offset: 1 });
});

for (const greeting of [null, "hello"]) {
  const what = greeting === null ? "" : ", and a live message before the resume is read";
  test(`a client the app joins when it connects gets what it missed${what}`, async () => {
    // The join comes before the server reads the resume: a plain position, maybe live messages,
    // then the replay of what was missed and the answering position.
    const room = "lobby";
    const wire = line();
    const alice = client({ WebSocket: wire.WebSocket }, LOBBY_URL);
    const start = await next(alice, "websuckets position");
    assert.equal(start.recovered, null);
    const bob = client({}, LOBBY_URL);
    const say = async (text) => {
      const sent = next(bob, "sent");
      bob.send("say", { room, text });
      return (await sent)[1];
    };
    const seen = next(alice, "said");
    await say("seen");
    assert.equal(await seen, "seen");
    const p = start.offset + 1;
    assert.deepEqual(alice.positions.get(room), { epoch: start.epoch, offset: p });

    const closed = next(alice, "close");
    wire.down = true;
    alice.send("drop");
    await closed;
    for (const text of ["a", "b", "c"]) await say(text);
    if (greeting !== null) await bob.request("greet", greeting);
    const said = collect(alice, "said");
    const raw = collect(alice, "websuckets position");
    const resumed = next(alice, "resumed");
    wire.down = false;

    const top = p + 3 + (greeting === null ? 0 : 1);
    assert.deepEqual(await resumed, { room, recovered: true, epoch: start.epoch, offset: top });
    const live = greeting === null ? [] : [[greeting, top]];
    assert.deepEqual(
      said.map(([text, message]) => [text, message.offset]),
      [...live, ["a", p + 1], ["b", p + 2], ["c", p + 3]],
      "each missed message once, the live one first",
    );
    assert.deepEqual(raw.map(([payload]) => [payload.offset, payload.recovered]), [
      [p + 3, null],
      [top, true],
    ]);
    assert.equal(sentAfter(wire, "drop")[0].event, "websuckets resume");
    assert.deepEqual(sentAfter(wire, "drop")[0].payload, { rooms: { [room]: { epoch: start.epoch, offset: p } } });
    assert.deepEqual(alice.positions.get(room), { epoch: start.epoch, offset: top });

    const after = next(alice, "said");
    await say("live");
    assert.equal(await after, "live");
    assert.deepEqual(alice.positions.get(room), { epoch: start.epoch, offset: top + 1 });
  });
}

/** A client on a socket that never connects anywhere: `sent` holds its frames, `open()` opens it. */
function offline() {
  const sent = [];
  class Socket {
    constructor() {
      this.readyState = 0;
    }

    send(data) {
      sent.push(JSON.parse(data));
    }

    close() {
      this.readyState = 3;
    }
  }
  const probe = new WebSucketsClient(URL, { WebSocket: Socket });
  client.track(probe);
  const open = () => {
    probe._socket.readyState = 1;
    probe._socket.onopen();
  };
  return { probe, sent, open };
}

test("while a resume is unanswered, live and replayed messages are each shown once and the position waits", async () => {
  const { probe, sent, open } = offline();
  open();
  const said = collect(probe, "said");
  const resumed = collect(probe, "resumed");
  const receive = (frame) => probe._receive(JSON.stringify(frame));
  const message = (offset, epoch = "e") => receive({ event: "said", payload: offset, room: "lobby", epoch, offset });
  const position = (offset, recovered, epoch = "e") =>
    receive({ event: "websuckets position", payload: { room: "lobby", epoch, offset, recovered } });
  position(1, null);
  probe._resume(probe.positions); // as after a reconnection
  assert.deepEqual(sent.at(-1).payload, { rooms: { lobby: { epoch: "e", offset: 1 } } });

  position(4, null); // joined before the server read the resume: ignored
  for (const offset of [5, 6]) message(offset); // live
  for (const offset of [2, 3, 4, 5, 6]) message(offset); // the replay
  assert.deepEqual(probe.positions.get("lobby"), { epoch: "e", offset: 1 }, "the position waits for the answer");
  position(6, true);
  message(6);
  message(7);
  assert.deepEqual(said.map(([offset]) => offset), [5, 6, 2, 3, 4, 7]);
  assert.deepEqual(resumed.map(([payload]) => payload.offset), [6]);
  assert.deepEqual(probe.positions.get("lobby"), { epoch: "e", offset: 7 });

  // A resume that fails ends the wait; what it showed is not shown again by the next one's replay.
  said.length = 0;
  probe._resume(probe.positions);
  message(9);
  receive({ event: "error", payload: { name: "nope", details: null, id: sent.at(-1).id } });
  await new Promise((resolve) => setTimeout(resolve)); // the request's rejection
  assert.deepEqual(probe.positions.get("lobby"), { epoch: "e", offset: 7 });
  assert.deepEqual(probe._shown.get("lobby"), { resume: null, seen: new Set([9]) }, "not pending any more");
  probe._resume(probe.positions);
  for (const offset of [8, 9]) message(offset);
  position(9, true);
  assert.deepEqual(said.map(([offset]) => offset), [9, 8]);

  // Another epoch is taken at once; past 1,000 offsets seen, the room stops waiting.
  probe._resume(probe.positions);
  position(3, null, "f");
  assert.deepEqual(probe.positions.get("lobby"), { epoch: "f", offset: 3 });
  probe._resume(probe.positions);
  for (let offset = 1004; offset >= 4; offset--) message(offset, "f");
  assert.deepEqual(probe.positions.get("lobby"), { epoch: "f", offset: 1004 });
  said.length = 0;
  message(1004, "f");
  message(1005, "f");
  assert.deepEqual(said.map(([offset]) => offset), [1005]);
});
