// websuckets.js: the browser client for websuckets servers. A plain ES module, no build step.
//
//   import { WebSucketsClient } from "/websuckets.js";
//   const client = new WebSucketsClient("ws://localhost:9000");
//   client.on("incoming message", (payload) => console.log(payload.from, payload.text));
//   await client.request("user auth", { login: "alice", password: "wonderland" }); // keeps the token
//   const users = await client.request("user list");
//   for await (const hit of client.stream("books search", { text: "python" })) console.log(hit.payload);
//
// The wire protocol is documented in docs/guide/protocol.md: commands are
// {"event", "payload", "token", "id"}; replies echo the "id"; errors are events named "error"
// whose payload is {"name", "details", "event", "id"}.
//
// Rooms with history (docs/guide/browser.md#resuming-rooms): messages of such a room carry its "room", "epoch"
// and "offset"; the client keeps the last position of each room in `client.positions`, drops
// duplicates, and after each reconnection sends "websuckets resume" with every position it knows,
// before anything else. The server replays what was missed once the app joins the client again,
// then sends "websuckets position"; the client emits its own "resumed" event for it:
//
//   client.on("open", () => client.send("join", { room: "lobby" })); // goes out after the resume
//   client.on("resumed", ({ room, recovered }) => recovered || reloadRoom(room));

/**
 * @typedef {object} ClientOptions
 * @property {boolean} [reconnect=true] reconnect when the connection drops (not after `close()`).
 * @property {number} [minDelay=250] milliseconds before the first reconnection attempt.
 * @property {number} [maxDelay=10000] the cap on the delay between attempts, in milliseconds.
 * @property {number} [factor=2] how much the delay grows after each failed attempt.
 * @property {number} [jitter=0.5] the fraction of each delay that is random (0: none, 1: all of it).
 * @property {number} [maxRetries=Infinity] attempts in a row before giving up.
 * @property {number} [timeout=10000] the default `request` timeout, in milliseconds.
 * @property {number} [maxQueue=100] frames kept while disconnected, sent once connected.
 * @property {string|null} [token=null] the token sent with every command.
 * @property {boolean} [handshakeToken=false] also present the token when the connection opens (and
 *   at each reconnection), as the subprotocol `websuckets.token.<token>` beside `websuckets`, for
 *   servers with handshake authentication (`WebSuckets(handshake_auth=HandshakeAuth(...))`).
 * @property {string|null} [tokenEvent="new token"] an event whose payload (a string, or an object
 *   with a string `token`) replaces `client.token`; `null` to set the token yourself.
 * @property {boolean} [resume=true] keep the position of each history room, drop duplicate room
 *   messages, and resume those rooms after each reconnection (and on "websuckets gap").
 * @property {typeof WebSocket} [WebSocket=globalThis.WebSocket] the WebSocket class to use.
 * @property {MessagePackCodec|null} [msgpack=null] speak MessagePack in binary frames (the subprotocol
 *   `websuckets.v1.msgpack`) with this codec: `import * as msgpack from "@msgpack/msgpack"`, or the
 *   `MessagePack` global of its browser build. Without it (the default) the client speaks JSON, and
 *   it speaks JSON too if the server does not select the subprotocol.
 */

/**
 * @typedef {object} MessagePackCodec
 * @property {(value: unknown) => Uint8Array} encode
 * @property {(data: Uint8Array) => unknown} decode
 */

/**
 * @typedef {object} RoomPosition
 * @property {string} epoch the room's epoch: a new one whenever the room's history was lost.
 * @property {number} offset the offset of the last message seen in that epoch (1 for the first).
 */

/**
 * @typedef {object} ResumedInfo
 * @property {string} room the room that was resumed.
 * @property {boolean} recovered `true`: every missed message was delivered, in order, just before
 *   this event; `false`: some were lost and none was replayed, so reload the room's state.
 * @property {string} epoch the room's epoch now.
 * @property {number} offset the room's offset now: live messages follow from it.
 */

/**
 * @typedef {object} CloseInfo
 * @property {number} code the close code (1006 when the connection was lost or never opened).
 * @property {string} reason the close reason.
 * @property {number|null} reconnectIn milliseconds until the next attempt; `null` when none will come.
 */

/**
 * @callback Listener
 * @param {any} payload the event's payload (for "close": a {@link CloseInfo}; for "resumed": a
 *   {@link ResumedInfo}; for "open": nothing).
 * @param {object} [message] the whole event, `{event, payload, id?}`; a room message with history
 *   also has `room`, `epoch` and `offset`.
 * @returns {void}
 */

/** The rooms whose positions a client keeps (past it, the one moved longest ago is forgotten): as
 * many as the server takes in one "websuckets resume". */
const MAX_ROOMS = 100;
/** The offsets a room notes while a resume of it is unanswered; past them it stops waiting and
 * moves its position to the largest. */
const MAX_SEEN = 1000;
const RESUME_COMMAND = "websuckets resume";
const POSITION_EVENT = "websuckets position";
const GAP_EVENT = "websuckets gap";
const STREAM_END_EVENT = "websuckets end";
const CANCEL_COMMAND = "websuckets cancel";
const MSGPACK_SUBPROTOCOL = "websuckets.v1.msgpack";

/**
 * An error from `request`: the server's error event, a timeout, or a lost connection.
 *
 * `code` is the server's error name (`"validation_error"`, `"unauthorized"`, or one a handler
 * raised), or the client's own: `"timeout"`, `"disconnected"`, `"closed"`, `"queue_full"`.
 */
export class WebSucketsError extends Error {
  /**
   * @param {string} code the error name.
   * @param {any} details what the server sent as `details`, or a sentence.
   * @param {object|null} [payload] the error event's whole payload, when the server sent one.
   */
  constructor(code, details, payload = null) {
    super(`${code}: ${typeof details === "string" ? details : JSON.stringify(details)}`);
    this.name = "WebSucketsError";
    /** @type {string} */
    this.code = code;
    /** @type {any} */
    this.details = details;
    /** @type {object|null} */
    this.payload = payload;
  }
}

/**
 * A connection to a websuckets server that reconnects by itself.
 *
 * Listen with `on(event, fn)`: server events by name, plus the client's own `"open"`, `"close"`
 * and `"resumed"`. Events that answer a pending `request` go to that request only.
 */
export class WebSucketsClient {
  /**
   * Connect to `url` (`ws://` or `wss://`); commands sent before the connection opens wait for it.
   * @param {string} url
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = {
      reconnect: true,
      minDelay: 250,
      maxDelay: 10000,
      factor: 2,
      jitter: 0.5,
      maxRetries: Infinity,
      timeout: 10000,
      maxQueue: 100,
      tokenEvent: "new token",
      resume: true,
      WebSocket: globalThis.WebSocket,
      msgpack: null,
      ...options,
    };
    /** @type {boolean} whether this connection speaks MessagePack (the server selected it). */
    this._packed = false;
    /** @type {string|null} the token sent as `"token"` with every command. */
    this.token = options.token ?? null;
    /** @type {string|null} this connection's id on the server (its `socket.id`), once a
     * `WebSuckets(welcome=True)` server has said it; a new one after each reconnect. */
    this.clientId = null;
    /** @type {Map<string, RoomPosition>} the position each history room resumes from (the last
     * message seen there, except while a resume of the room is unanswered: then where it starts),
     * the most recently moved last; at most {@link MAX_ROOMS}. Kept across reconnections. */
    this.positions = new Map();
    /** @type {Map<string, {resume: number|null, seen: Set<number>}>} the rooms whose messages were
     * shown past their position while a resume was unanswered: `resume` is that resume (`null` once
     * it failed), `seen` the offsets shown. Cleared when the position moves. */
    this._shown = new Map();
    this._nextResume = 1;
    /** @type {Map<string, Set<Listener>>} */
    this._listeners = new Map();
    /** @type {Map<number, {resolve: Function, reject: Function, timer: any, sent: boolean}>} */
    this._pending = new Map();
    /** @type {Map<number, {queue: object[], wake: Function|null, sent: boolean}>} the streams running, by id */
    this._streams = new Map();
    /** @type {Set<number>} streams left early and cancelled: what still comes for them is dropped */
    this._cancelled = new Set();
    /** @type {object[]} commands waiting for the connection to open */
    this._queue = [];
    this._nextId = 1;
    this._attempts = 0;
    this._opened = false;
    this._closed = false;
    this._retryTimer = null;
    /** @type {WebSocket|null} */
    this._socket = null;
    this._connect();
  }

  /** Whether the connection is open now. */
  get connected() {
    return this._socket !== null && this._socket.readyState === 1;
  }

  /**
   * Call `fn(payload, message)` for every event named `event`; `"open"`, `"close"` and
   * `"resumed"` are the client's own. Returns a function that unsubscribes.
   * @param {string} event
   * @param {Listener} fn
   * @returns {() => void}
   */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  /**
   * Stop calling `fn` for `event`.
   * @param {string} event
   * @param {Listener} fn
   */
  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
  }

  /**
   * Send a command without waiting for an answer. Answers and errors it causes go to `on` listeners.
   * @param {string} event the command's full name, such as `"chat send"`.
   * @param {any} [payload] any JSON value; left out of the frame when `undefined`.
   */
  send(event, payload) {
    this._enqueue({ event, payload });
  }

  /**
   * Send a command with a fresh `id` and wait for the event that carries it back.
   *
   * Resolves with the reply's payload. Rejects with a {@link WebSucketsError}: the server's error
   * (its `code` is the error name), `"timeout"`, or `"disconnected"` when the connection dropped
   * after the command was sent. The answer is what the handler sends with `ctx.reply(...)`, or,
   * for a handler without `Context`, the first event it sends back (the server adds the id to it).
   * @param {string} event
   * @param {any} [payload]
   * @param {{timeout?: number}} [options] milliseconds to wait (default: the client's `timeout`).
   * @returns {Promise<any>}
   */
  request(event, payload, { timeout = this.options.timeout } = {}) {
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new WebSucketsError("timeout", `no answer to ${JSON.stringify(event)} in ${timeout} ms`));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer, sent: false });
      this._enqueue({ event, payload, id });
    });
  }

  /**
   * Start a stream (a command whose handler yields) and iterate its events as they come:
   * `for await (const hit of client.stream("books search", { text: "ws" }))`. Each is the message
   * `{event, payload, id}`; the loop ends at the stream's end ("websuckets end"). Leaving the loop
   * early (`break`, `return`, an exception) or aborting `signal` cancels the stream on the server
   * ("websuckets cancel"); an aborted signal makes the loop throw its reason. The loop throws a
   * {@link WebSucketsError}: the server's error (which ends the stream), `"timeout"` (no event for
   * `timeout` ms; none by default), `"disconnected"`, `"closed"`, `"queue_full"`.
   * @param {string} event
   * @param {any} [payload]
   * @param {{signal?: AbortSignal, timeout?: number}} [options]
   * @returns {AsyncGenerator<{event: string, payload: any, id: number}>}
   */
  async *stream(event, payload, { signal, timeout } = {}) {
    signal?.throwIfAborted();
    const id = this._nextId++;
    const stream = { queue: [], wake: null, sent: false };
    this._streams.set(id, stream);
    const abort = () => this._deliver(stream, { abort: signal.reason }, true);
    signal?.addEventListener("abort", abort, { once: true });
    let ended = false;
    try {
      this._enqueue({ event, payload, id });
      while (true) {
        const next = await this._nextOf(stream, timeout);
        if (next.abort !== undefined) throw next.abort;
        if (next.error !== undefined) {
          ended = next.error.code !== "timeout"; // the client's own timeout: the stream still runs there
          throw next.error;
        }
        const message = next.message;
        if (message.event === STREAM_END_EVENT) {
          ended = true;
          return;
        }
        if (message.event === "error") {
          ended = true;
          const error = message.payload;
          throw new WebSucketsError(String(error?.name), error?.details ?? null, error);
        }
        yield message;
      }
    } finally {
      signal?.removeEventListener("abort", abort);
      this._streams.delete(id);
      if (!ended && stream.sent && this.connected) {
        this._cancelled.add(id);
        this._socket.send(this._encode({ event: CANCEL_COMMAND, id }));
      }
    }
  }

  /**
   * Close for good: no more reconnection; pending requests are rejected with `"closed"`.
   * @param {number} [code=1000]
   * @param {string} [reason=""]
   */
  close(code = 1000, reason = "") {
    this._closed = true;
    clearTimeout(this._retryTimer);
    this._queue = [];
    this._rejectPending(() => true, "closed", "the client was closed");
    this._failStreams(() => true, "closed", "the client was closed");
    if (this._socket !== null) this._socket.close(code, reason);
  }

  // internals

  _connect() {
    const { WebSocket, handshakeToken, msgpack } = this.options;
    const protocols = msgpack ? [MSGPACK_SUBPROTOCOL] : [];
    if (handshakeToken && this.token) protocols.push("websuckets", `websuckets.token.${this.token}`);
    const socket = protocols.length ? new WebSocket(this.url, protocols) : new WebSocket(this.url);
    if (msgpack) socket.binaryType = "arraybuffer";
    this._socket = socket;
    socket.onopen = () => {
      this._attempts = 0;
      this._packed = Boolean(msgpack) && socket.protocol === MSGPACK_SUBPROTOCOL;
      // Before "open": its listeners' commands (the page joining its rooms again) follow the resume.
      if (this._opened) this._resume(this.positions);
      this._opened = true;
      this._emit("open", undefined);
      const queued = this._queue;
      this._queue = [];
      for (const command of queued) this._transmit(command);
    };
    socket.onmessage = (message) => this._receive(message.data);
    socket.onclose = (close) => this._lost(socket, close.code, close.reason);
    socket.onerror = () => {
      // Browsers follow every error with a close event; Node 20's WebSocket does not when the
      // connection fails to open, so a failure to connect counts as the close here.
      if (socket.readyState === 0) this._lost(socket, 1006, "");
    };
  }

  _enqueue(command) {
    if (this.connected) {
      this._transmit(command);
    } else if (this._closed || this._queue.length >= this.options.maxQueue) {
      const [code, why] = this._closed ? ["closed", "the client was closed"] : ["queue_full", "too many commands queued"];
      if (command.id !== undefined) {
        this._rejectPending((id) => id === command.id, code, why);
        this._failStreams((id) => id === command.id, code, why);
      }
    } else {
      this._queue.push(command);
    }
  }

  _transmit({ event, payload, id }) {
    const frame = { event };
    if (payload !== undefined) frame.payload = payload;
    if (this.token !== null && this.token !== undefined) frame.token = this.token;
    if (id !== undefined) {
      frame.id = id;
      const pending = this._pending.get(id) ?? this._streams.get(id);
      if (pending === undefined) return; // timed out (a stream left) while queued
      pending.sent = true;
    }
    this._socket.send(this._encode(frame));
  }

  _encode(frame) {
    return this._packed ? this.options.msgpack.encode(frame) : JSON.stringify(frame);
  }

  _receive(data) {
    let message;
    try {
      message = typeof data === "string" ? JSON.parse(data) : this.options.msgpack.decode(new Uint8Array(data));
    } catch {
      return; // not an event: a handler that sends plain text
    }
    if (message === null || typeof message !== "object" || typeof message.event !== "string") return;
    const isError = message.event === "error";
    const payload = message.payload;
    const id = message.id ?? (isError ? payload?.id : undefined);
    if (this.options.resume && !this._track(message)) return; // a duplicate
    this._takeToken(message);
    if (message.event === "welcome" && typeof payload?.client_id === "string") this.clientId = payload.client_id;
    const pending = id === undefined || id === null ? undefined : this._pending.get(id);
    if (pending !== undefined) {
      this._pending.delete(id);
      clearTimeout(pending.timer);
      if (isError) pending.reject(new WebSucketsError(String(payload?.name), payload?.details ?? null, payload));
      else pending.resolve(payload);
      return;
    }
    const stream = id === undefined || id === null ? undefined : this._streams.get(id);
    const ends = isError || message.event === STREAM_END_EVENT;
    if (stream !== undefined) {
      if (ends) this._streams.delete(id);
      this._deliver(stream, { message });
      return;
    }
    if (this._cancelled.has(id)) {
      if (ends) this._cancelled.delete(id);
      return; // an event of a stream left early
    }
    this._emit(message.event, payload, message);
    if (!this.options.resume) return;
    if (message.event === POSITION_EVENT && typeof payload?.recovered === "boolean") {
      const { room, recovered, epoch, offset } = payload;
      this._emit("resumed", { room, recovered, epoch, offset }, message);
    } else if (message.event === GAP_EVENT && typeof payload?.room === "string") {
      const known = this.positions.get(payload.room);
      if (known !== undefined) this._resume(new Map([[payload.room, known]]));
    }
  }

  /**
   * Keep the position `message` carries; `false` for a room message already seen (a duplicate).
   *
   * While a resume of the room is unanswered (the room is pending) its position stays where the
   * resume starts and the offsets shown meanwhile are noted: an app that joins the client when it
   * connects sends live messages, and a plain "websuckets position", before the server reads the
   * resume, whose replay then comes. Each offset is shown once, in whatever order it comes.
   */
  _track(message) {
    const isPosition = message.event === POSITION_EVENT;
    const { room, epoch, offset } = isPosition ? (message.payload ?? {}) : message;
    if (typeof room !== "string" || typeof epoch !== "string" || !Number.isInteger(offset)) return true;
    const known = this.positions.get(room);
    const shown = known?.epoch === epoch ? this._shown.get(room) : undefined;
    if (isPosition) {
      // A plain join of a pending room: the join came before the resume, which will still be answered.
      if (typeof message.payload.recovered !== "boolean" && shown?.resume != null) return true;
    } else if (known?.epoch === epoch) {
      if (offset <= known.offset || shown?.seen.has(offset)) return false;
      if (shown?.resume != null) {
        shown.seen.add(offset);
        if (shown.seen.size > MAX_SEEN) this._move(room, epoch, Math.max(...shown.seen));
        return true;
      }
    }
    this._move(room, epoch, offset);
    return true;
  }

  /** Set the position of `room`, which is pending no more. */
  _move(room, epoch, offset) {
    this._shown.delete(room);
    this.positions.delete(room); // to the end: the most recently moved
    this.positions.set(room, { epoch, offset });
    if (this.positions.size > MAX_ROOMS) {
      const oldest = this.positions.keys().next().value;
      this.positions.delete(oldest);
      this._shown.delete(oldest);
    }
  }

  /** Ask the server to resume `positions`' rooms; what it misses comes back as "resumed" events. */
  _resume(positions) {
    if (!this.options.resume || positions.size === 0) return;
    const rooms = Object.fromEntries([...positions].map(([room, { epoch, offset }]) => [room, { epoch, offset }]));
    const resume = this._nextResume++;
    // Pending until answered; what a failed resume from the same position showed stays noted.
    for (const room of positions.keys()) {
      const shown = this._shown.get(room);
      if (shown === undefined) this._shown.set(room, { resume, seen: new Set() });
      else shown.resume = resume;
    }
    // The reply (the rooms waiting for a join) is of no use. A failure (an error, the connection
    // lost before the answer) ends the wait: the rooms are no longer pending.
    this.request(RESUME_COMMAND, { rooms }).catch(() => {
      for (const [room, shown] of this._shown) {
        if (shown.resume !== resume) continue;
        shown.resume = null;
        if (shown.seen.size === 0) this._shown.delete(room);
      }
    });
  }

  _takeToken(message) {
    if (this.options.tokenEvent === null || message.event !== this.options.tokenEvent) return;
    const payload = message.payload;
    const token = typeof payload === "string" ? payload : payload?.token;
    if (typeof token === "string") this.token = token;
  }

  _lost(socket, code, reason) {
    if (socket !== this._socket) return;
    this._socket = null;
    this._rejectPending((_, pending) => pending.sent, "disconnected", `the connection closed (${code})`);
    this._failStreams((_, stream) => stream.sent, "disconnected", `the connection closed (${code})`);
    this._cancelled.clear();
    let reconnectIn = null;
    if (!this._closed && this.options.reconnect && this._attempts < this.options.maxRetries) {
      reconnectIn = this._backoff(this._attempts++);
      this._retryTimer = setTimeout(() => this._connect(), reconnectIn);
    } else {
      this._closed = true;
      this._queue = [];
      this._rejectPending(() => true, "closed", "the connection closed and will not reopen");
      this._failStreams(() => true, "closed", "the connection closed and will not reopen");
    }
    this._emit("close", { code, reason, reconnectIn });
  }

  /** The delay before attempt `attempt` (0 first): exponential, capped, partly random. */
  _backoff(attempt) {
    const { minDelay, maxDelay, factor, jitter } = this.options;
    const delay = Math.min(maxDelay, minDelay * factor ** attempt);
    return Math.round(delay * (1 - jitter * Math.random()));
  }

  _rejectPending(which, code, why) {
    for (const [id, pending] of this._pending) {
      if (!which(id, pending)) continue;
      this._pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(new WebSucketsError(code, why));
    }
  }

  /** End the streams `which(id, stream)` picks with a {@link WebSucketsError} `code`. */
  _failStreams(which, code, why) {
    for (const [id, stream] of this._streams) {
      if (!which(id, stream)) continue;
      this._streams.delete(id);
      this._deliver(stream, { error: new WebSucketsError(code, why) });
    }
  }

  /** Hand `next` to the stream's waiting loop, or queue it (first, when `urgent`: an abort). */
  _deliver(stream, next, urgent = false) {
    if (stream.wake !== null) stream.wake(next);
    else if (urgent) stream.queue.unshift(next);
    else stream.queue.push(next);
  }

  /** What comes next for a stream: `{message}`, `{error}` or `{abort}`; `timeout` ms at most. */
  _nextOf(stream, timeout) {
    if (stream.queue.length > 0) return Promise.resolve(stream.queue.shift());
    return new Promise((resolve) => {
      const timer =
        timeout === undefined
          ? null
          : setTimeout(() => {
              stream.wake = null;
              resolve({ error: new WebSucketsError("timeout", `no event of the stream in ${timeout} ms`) });
            }, timeout);
      stream.wake = (next) => {
        clearTimeout(timer);
        stream.wake = null;
        resolve(next);
      };
    });
  }

  _emit(event, payload, message) {
    const listeners = this._listeners.get(event);
    if (listeners === undefined) return;
    for (const fn of [...listeners]) {
      try {
        fn(payload, message);
      } catch (error) {
        setTimeout(() => {
          throw error; // report it like an uncaught error, without breaking the other listeners
        });
      }
    }
  }
}

/**
 * Create a client and wait until its connection opens.
 * @param {string} url
 * @param {ClientOptions & {openTimeout?: number}} [options] `openTimeout`: milliseconds to wait (10000).
 * @returns {Promise<WebSucketsClient>}
 */
export function connect(url, options = {}) {
  const client = new WebSucketsClient(url, options);
  return new Promise((resolve, reject) => {
    const settle = (error) => {
      clearTimeout(timer);
      stopOpen();
      stopClose();
      if (error === undefined) return resolve(client);
      client.close();
      reject(error);
    };
    const timer = setTimeout(
      () => settle(new WebSucketsError("timeout", `could not connect to ${url}`)),
      options.openTimeout ?? 10000,
    );
    const stopOpen = client.on("open", () => settle());
    const stopClose = client.on("close", ({ code, reconnectIn }) => {
      if (reconnectIn === null) settle(new WebSucketsError("closed", `could not connect to ${url} (${code})`));
    });
  });
}
