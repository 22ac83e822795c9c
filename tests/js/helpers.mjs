// What the node tests of websuckets.js share (not a test file: tests/test_js_client.py runs *.test.mjs).
import { after } from "node:test";

import { WebSucketsClient } from "../../websuckets/js/websuckets.js";

/**
 * A maker of clients of `url` with `defaults`, each closed once the file's tests are done:
 * `client(options, url)` makes one; `client.track(made)` closes one made otherwise.
 */
export function clientsOf(url, defaults) {
  const made = [];
  after(() => {
    for (const one of made) one.close();
  });
  const client = (options = {}, to = url) => client.track(new WebSucketsClient(to, { ...defaults, ...options }));
  client.track = (one) => {
    made.push(one);
    return one;
  };
  return client;
}

/** The next `event` on `emitter` (its payload), or an error after `ms`. */
export function next(emitter, event, ms = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no ${JSON.stringify(event)} within ${ms} ms`));
    }, ms);
    const stop = emitter.on(event, (payload) => {
      clearTimeout(timer);
      stop();
      resolve(payload);
    });
  });
}
