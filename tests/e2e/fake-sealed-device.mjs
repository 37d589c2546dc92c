// A stand-in for a sealed-mode device, written with the viewer's own
// seal.js, for testing the viewer's sealed signaling in a real browser
// before (or without) the daemon: it publishes a sealed status with a
// nonce, opens what viewers send on `P/D/in/S`, and answers sealed on
// `P/D/out/S` however the test says. It makes no WebRTC answer.
import mqtt from "mqtt";
import { deriveKeys, open, seal, toBase64url } from "../../web/js/seal.js";
import { waitFor } from "./lib.mjs";

/** A fresh random pairing secret and its key string `<kid>.<secret>`, as `peercam pair` makes them. */
export async function newPairingKey() {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const { kid } = await deriveKeys(secret);
  return { secret, keyString: `${kid}.${toBase64url(secret)}` };
}

/**
 * Connects to `url` (with mqtt.js `options`, e.g. a TLS `ca`) as device
 * `device` under `prefix`, paired with one viewer's `secret`. `respond(message,
 * device)` is called for each message that opens, in order, with `{ session,
 * body }`; it answers with `device.reply(session, body)`. The device
 * keeps every payload it got in `received` (`{ session, body }`, `body` null
 * when it did not open) and its current status nonce in `nonce`;
 * `rotateNonce()` publishes a new one.
 */
export async function fakeSealedDevice(cleanup, { url, options = {}, prefix, device, name = "Sealed fake", secret, respond }) {
  const keys = await deriveKeys(secret);
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  cleanup.push(() => client.endAsync(true));
  const sentSeq = new Map();
  let handling = Promise.resolve();
  const fake = {
    received: [],
    nonce: null,
    /** Publishes a fresh random status nonce, retained. */
    async rotateNonce() {
      this.nonce = toBase64url(crypto.getRandomValues(new Uint8Array(16)));
      const status = { v: 1, online: true, name, sealed: true, nonce: this.nonce, video: ["H264"], audio: null, viewers: 0, max_viewers: 4, ice_servers: [] };
      await client.publishAsync(`${prefix}/${device}/status`, JSON.stringify(status), { qos: 1, retain: true });
    },
    /** Sends `body` to session `session`, sealed, with the session's next `seq`. */
    async reply(session, body) {
      const seq = (sentSeq.get(session) ?? 0) + 1;
      sentSeq.set(session, seq);
      const topic = `${prefix}/${device}/out/${session}`;
      await client.publishAsync(topic, await seal({ v: 1, ...body, seq }, topic, keys.deviceToViewer), { qos: 1 });
    },
    /** The opened bodies of session `session`. */
    bodies(session) {
      return this.received.filter((m) => m.session === session).map((m) => m.body);
    },
    /** The sessions the device has heard from, in order. */
    sessions() {
      return [...new Set(this.received.map((m) => m.session))];
    },
    /** Waits until `pred(received)` holds. */
    waitFor(what, pred, timeoutMs = 5000) {
      return waitFor(what, () => pred(this.received), timeoutMs, 20);
    },
  };
  client.on("message", (topic, payload) => {
    const session = topic.split("/").at(-1);
    handling = handling.then(async () => {
      const plaintext = await open(payload.toString(), topic, keys.viewerToDevice);
      const message = { session, body: plaintext === null ? null : JSON.parse(plaintext) };
      fake.received.push(message);
      if (message.body) await respond(message, fake);
    }).catch((e) => console.error("fake sealed device:", e));
  });
  await client.subscribeAsync(`${prefix}/${device}/in/+`, { qos: 1 });
  await fake.rotateNonce();
  return fake;
}
