// The call against a fake broker and peer connection: signaling order, duplicates,
// ends, the talk floor and the mic, what device errors mean, and sealed calls
// against a fake sealed device.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Call, MAX_STALE_RETRIES, byeOutcome, callsAgain, deviceErrorOutcome } from "../js/call.js";
import { holderText } from "../js/floor.js";
import { deriveKeys, open, seal as sealPayload } from "../js/seal.js";
import { acceptOpened, classifyIncoming } from "../js/sealed.js";
import { DISCONNECTED_GRACE_MS, MAX_ICE_RESTARTS, RESTART_TIMEOUT_MS } from "../js/restart.js";

const PREFIX = "p";
const SESSION = "S".repeat(22);
const IN = `${PREFIX}/cam/in/${SESSION}`;
const OUT = `${PREFIX}/cam/out/${SESSION}`;

/** Resolves `next(name)` with the first not-yet-taken entry called `name`, now or when it comes. */
function queue() {
  const entries = [];
  const waiting = [];
  return {
    entries,
    push(name, value) {
      const entry = { name, value, taken: false };
      entries.push(entry);
      const waiter = waiting.find((w) => w.name === name);
      if (waiter) {
        waiting.splice(waiting.indexOf(waiter), 1);
        entry.taken = true;
        waiter.resolve(value);
      }
    },
    next(name) {
      const entry = entries.find((e) => e.name === name && !e.taken);
      if (entry) {
        entry.taken = true;
        return Promise.resolve(entry.value);
      }
      return new Promise((resolve) => waiting.push({ name, resolve }));
    },
    names: () => entries.map((e) => e.name),
  };
}

function fakeBroker() {
  const sent = queue();
  const log = [];
  const routes = new Map();
  return {
    sent,
    log,
    routes,
    subscribe(topic, onMessage) {
      log.push(`subscribe ${topic}`);
      routes.set(topic, onMessage);
      return Promise.resolve();
    },
    unsubscribe(topic) {
      log.push(`unsubscribe ${topic}`);
      routes.delete(topic);
    },
    publish(topic, text) {
      const body = JSON.parse(text);
      log.push(`publish ${topic} ${body.type}`);
      sent.push(body.type, body);
    },
    /** Delivers `body` (or raw text) from the device on out/S. */
    deliver(body) {
      routes.get(OUT)?.(new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify({ v: 1, ...body })));
    },
  };
}

class FakePeerConnection {
  constructor(config) {
    this.config = config;
    this.transceivers = [];
    this.remoteDescriptions = [];
    this.remoteDescription = null;
    this.candidates = [];
    this.connectionState = "new";
    this.iceConnectionState = "new";
    this.signalingState = "stable";
    this.offerOptions = [];
    this.rollbacks = 0;
    this.closed = false;
  }

  addTransceiver(trackOrKind, { direction }) {
    const transceiver = { mid: String(this.transceivers.length), kind: trackOrKind.kind ?? trackOrKind, direction, currentDirection: null };
    this.transceivers.push(transceiver);
    return transceiver;
  }

  getTransceivers() {
    return this.transceivers;
  }

  /** Offer n carries ICE generation `ufn`. */
  async createOffer(options = {}) {
    this.offerOptions.push(options);
    const n = this.offerOptions.length;
    return { type: "offer", sdp: `v=0 offer ${n}\r\na=ice-ufrag:uf${n}\r\n` };
  }

  /** Gathers one host candidate of the offer's generation at once, as a browser may before the offer is out. */
  async setLocalDescription(description) {
    if (description.type === "rollback") {
      this.rollbacks += 1;
      this.signalingState = "stable";
      return;
    }
    this.localDescription = description;
    this.signalingState = "have-local-offer";
    const ufrag = /a=ice-ufrag:(\S+)/.exec(description.sdp)[1];
    this.onicecandidate({ candidate: { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: ufrag } });
  }

  async setRemoteDescription(description) {
    this.remoteDescription = description;
    this.remoteDescriptions.push(description);
    this.signalingState = "stable";
    for (const t of this.transceivers) t.currentDirection = t.direction;
  }

  async addIceCandidate(candidate) {
    this.candidates.push(candidate);
  }

  async getStats() {
    return new Map();
  }

  close() {
    this.closed = true;
  }

  /** Both states change, ICE's first, as in a browser. */
  becomes(state) {
    this.iceConnectionState = state;
    this.oniceconnectionstatechange();
    this.connectionState = state;
    this.onconnectionstatechange();
  }
}

function fakeMic() {
  return { kind: "audio", enabled: false, stopped: false, stop() { this.stopped = true; } };
}

/** A started call to device `cam` (with `device` fields) that has offered; closed after the test. */
async function offeredCall(t, device = {}, { now = () => 1000, relayOnly = false } = {}) {
  const broker = fakeBroker();
  const hooks = queue();
  const pcs = [];
  const mic = fakeMic();
  const record = (name) => (...args) => hooks.push(name, args);
  const call = new Call({
    broker,
    prefix: PREFIX,
    device: { id: "cam", name: "Front door", online: true, ice_servers: [{ urls: ["stun:status:3478"] }], ...device },
    hooks: Object.fromEntries(["state", "ended", "closed", "problem", "track", "floor", "ring", "stats"].map((n) => [n, record(n)])),
    createPeerConnection: (config) => {
      pcs.push(new FakePeerConnection(config));
      return pcs[0];
    },
    openMic: async () => mic,
    now,
    sessionId: SESSION,
    relayOnly,
  });
  t.after(() => call.close());
  call.start();
  await broker.sent.next("ice-servers");
  broker.deliver({ type: "ice-servers", ice_servers: [{ urls: ["turn:t:3478"], username: "u", credential: "c" }] });
  const offer = await broker.sent.next("offer");
  return { call, broker, hooks, pc: pcs[0], mic, offer };
}

/** Delivers `body` and waits until the call has applied it. */
async function deliver(call, broker, body) {
  broker.deliver(body);
  await call.inbox;
}

test("the call listens on out/S before it says anything, then asks for ICE servers, offers, and trickles", async (t) => {
  const { broker, hooks, pc, offer } = await offeredCall(t);
  assert.deepEqual(broker.log.slice(0, 3), [`subscribe ${OUT}`, `publish ${IN} ice-servers`, `publish ${IN} offer`]);
  assert.match(offer.sdp, /^v=0 offer 1\r\n/);
  assert.deepEqual(pc.config, { iceServers: [{ urls: ["turn:t:3478"], username: "u", credential: "c" }], bundlePolicy: "max-bundle" });
  assert.deepEqual(await hooks.next("state"), ["calling"]);
  const candidate = await broker.sent.next("candidate");
  assert.deepEqual(candidate, { v: 1, type: "candidate", candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "uf1" });
  assert.deepEqual(pc.transceivers.map((x) => [x.kind, x.direction]), [["video", "recvonly"], ["audio", "recvonly"]], "a device without two-way audio gets a listen-only offer");
});

test("a byte-identical answer is an MQTT duplicate; candidates wait for the answer", async (t) => {
  const { call, broker, pc } = await offeredCall(t);
  await deliver(call, broker, { type: "candidate", candidate: "candidate:early", sdpMid: "0", sdpMLineIndex: 0 });
  assert.deepEqual(pc.candidates, [], "no candidate before the answer");
  await deliver(call, broker, { type: "answer", sdp: "v=0 answer" });
  await deliver(call, broker, { type: "answer", sdp: "v=0 answer" });
  assert.equal(pc.remoteDescriptions.length, 1);
  await deliver(call, broker, { type: "answer", sdp: "v=0 answer 2" });
  assert.equal(pc.remoteDescriptions.length, 2, "a different answer is applied");
  await deliver(call, broker, { type: "candidate", candidate: "candidate:late" });
  await deliver(call, broker, { type: "candidate", candidate: "candidate:late" });
  assert.deepEqual(pc.candidates, [{ candidate: "candidate:late", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: undefined }]);
});

test("what is not a v1 message with a type is ignored", async (t) => {
  const { call, broker, hooks } = await offeredCall(t);
  for (const payload of ["not json", '{"v":2,"type":"bye"}', '{"v":"1","type":"bye"}', '{"v":1}']) broker.deliver(payload);
  await call.inbox;
  assert.ok(!call.closed);
  assert.ok(!hooks.names().includes("ended"));
});

test("a bye before media connected is a connectivity error, and gets no bye back", async (t) => {
  const { call, broker, hooks } = await offeredCall(t);
  await deliver(call, broker, { type: "bye", reason: "could not connect in time" });
  const [outcome] = await hooks.next("ended");
  assert.equal(outcome.code, "no-connectivity");
  assert.match(outcome.message, /before media connected \(could not connect in time\).*TURN/);
  assert.ok(!broker.sent.names().includes("bye"));
  assert.ok(broker.log.includes(`unsubscribe ${OUT}`));
});

test("a bye after media connected ends the call normally with the device's reason", async (t) => {
  const { call, broker, hooks, pc } = await offeredCall(t);
  await deliver(call, broker, { type: "answer", sdp: "v=0 answer" });
  pc.becomes("connected");
  assert.deepEqual(await hooks.next("state"), ["calling"]);
  assert.deepEqual(await hooks.next("state"), ["connected"]);
  assert.equal(call.stats.connectMs, 0);
  await deliver(call, broker, { type: "bye", reason: "shutting down" });
  assert.deepEqual(await hooks.next("ended"), [{ code: null, message: null, note: "the device ended the call: shutting down" }]);
  assert.equal((await broker.sent.next("bye")).reason, "the device ended the call: shutting down");
  assert.ok(pc.closed);
});

test("busy on the first offer ends the call quietly with the device's words", async (t) => {
  const { call, broker, hooks } = await offeredCall(t);
  await deliver(call, broker, { type: "error", code: "busy", re: "offer", message: "4 viewers already." });
  const [outcome] = await hooks.next("ended");
  assert.equal(outcome.code, "busy");
  assert.equal(outcome.message, "Front door is busy: it already serves as many viewers as it allows. 4 viewers already.");
  assert.ok(!broker.sent.names().includes("bye"));
});

test("hanging up says bye with the reason, and stops the peer connection and the mic", async (t) => {
  const { call, broker, hooks, pc, mic } = await offeredCall(t, { audio: "sendrecv" });
  call.end(null, null, "hung up");
  assert.deepEqual(await broker.sent.next("bye"), { v: 1, type: "bye", reason: "hung up" });
  assert.deepEqual(hooks.names().slice(-2), ["closed", "ended"]);
  assert.ok(pc.closed);
  assert.ok(mic.stopped);
  call.end(null, null, "again");
  assert.equal(broker.sent.names().filter((n) => n === "bye").length, 1, "an ended call ends once");
  assert.equal(call.talkInput({ type: "set", on: true }), false, "no talk on an ended call");
});

test("talk: the mic speaks only between the device's grant and the floor going elsewhere", async (t) => {
  const { call, broker, pc, mic } = await offeredCall(t, { audio: "sendrecv" });
  assert.deepEqual(pc.transceivers.map((x) => [x.kind, x.direction]), [["video", "recvonly"], ["audio", "sendrecv"]]);
  assert.equal(call.canTalk(), false, "not before media connected");
  await deliver(call, broker, { type: "answer", sdp: "v=0 answer" });
  pc.becomes("connected");
  assert.equal(call.canTalk(), true);

  assert.equal(call.talkInput({ type: "press", now: 0 }), true);
  assert.deepEqual(await broker.sent.next("talk"), { v: 1, type: "talk", on: true });
  assert.equal(mic.enabled, false, "silent until granted");
  await deliver(call, broker, { type: "talk", granted: true, holder: "viewer" });
  assert.equal(mic.enabled, true);
  await deliver(call, broker, { type: "event", event: { type: "talk", holder: null } });
  assert.equal(mic.enabled, false, "the floor went free");
  assert.equal(call.floor.want, false);
});

test("talk refused as unsupported: no floor on this call, and the page is told", async (t) => {
  const { call, broker, hooks, pc } = await offeredCall(t, { audio: "sendrecv" });
  await deliver(call, broker, { type: "answer", sdp: "v=0 answer" });
  pc.becomes("connected");
  call.talkInput({ type: "set", on: true });
  await deliver(call, broker, { type: "error", code: "unsupported", re: "talk", message: "no talk-back here" });
  assert.deepEqual(await hooks.next("problem"), ["unsupported", "Front door cannot take talk-back: no talk-back here"]);
  assert.equal(call.canTalk(), false);
  assert.ok(!call.closed, "the call goes on");
});

test("rings reach the page", async (t) => {
  const { call, broker, hooks } = await offeredCall(t);
  await deliver(call, broker, { type: "event", event: { type: "ring", at: "2026-11-23T19:00:00Z" } });
  assert.deepEqual(await hooks.next("ring"), [{ type: "ring", at: "2026-11-23T19:00:00Z" }]);
});

test("device errors: what each means for the call", () => {
  const name = "Cam";
  assert.deepEqual(deviceErrorOutcome({ code: "bad-request", re: "offer", message: "bad SDP" }, { name, connected: false }),
    { kind: "end", code: "bad-request", message: "Cam refused the call: bad SDP", quiet: true });
  assert.deepEqual(deviceErrorOutcome({ code: "bad-request", re: "offer", message: "bad SDP" }, { name, connected: true }),
    { kind: "show", code: "bad-request", message: "Cam: bad SDP" }, "a renegotiation error leaves the call as it was");
  assert.deepEqual(deviceErrorOutcome({ code: "internal", re: "ice-servers" }, { name, connected: false }),
    { kind: "end", code: "internal", message: "Cam refused the call: internal", quiet: false });
  assert.deepEqual(deviceErrorOutcome({ code: "busy", re: "offer" }, { name, connected: false }),
    { kind: "end", code: "busy", message: "Cam is busy: it already serves as many viewers as it allows.", quiet: true });
  assert.deepEqual(deviceErrorOutcome({ code: "bad-request", re: "talk", message: 42 }, { name, connected: true }),
    { kind: "talk-refused", code: "bad-request", message: "Cam cannot take talk-back: bad-request" });
  assert.deepEqual(deviceErrorOutcome({ re: "candidate" }, { name, connected: true }).code, "internal", "no code is internal");
});

test("a device's bye: before media it is a connectivity error, after it a normal end", () => {
  assert.deepEqual(byeOutcome({}, true), { code: null, message: null, note: "the device ended the call", quiet: false });
  const early = byeOutcome({ reason: "timeout" }, false);
  assert.equal(early.code, "no-connectivity");
  assert.equal(early.quiet, true);
  assert.match(early.message, /^The device ended the call before media connected \(timeout\)\. .*TURN server/);
});

test("relay only: the peer connection may use TURN-relayed candidates only", async (t) => {
  const { pc } = await offeredCall(t, {}, { relayOnly: true });
  assert.equal(pc.config.iceTransportPolicy, "relay");
});

/** A call that connected, with mocked timers and a clock the test moves with them. */
async function connectedCall(t) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const clock = { at: 1000 };
  const parts = await offeredCall(t, {}, { now: () => clock.at });
  await deliver(parts.call, parts.broker, { type: "answer", sdp: "v=0 answer 1" });
  parts.pc.becomes("connected");
  const advance = (ms) => {
    clock.at += ms;
    t.mock.timers.tick(ms);
  };
  return { ...parts, advance };
}

test("a path lost past the grace period restarts ICE on the same session, and the call goes on", async (t) => {
  const { call, broker, hooks, pc, advance } = await connectedCall(t);
  assert.equal((await broker.sent.next("candidate")).usernameFragment, "uf1");
  pc.becomes("disconnected");
  advance(DISCONNECTED_GRACE_MS - 1);
  assert.equal(pc.offerOptions.length, 1, "nothing within the grace period");
  advance(1);
  const offer = await broker.sent.next("offer");
  assert.deepEqual(pc.offerOptions[1], { iceRestart: true });
  assert.match(offer.sdp, /a=ice-ufrag:uf2/);
  const candidate = await broker.sent.next("candidate");
  assert.equal(candidate.usernameFragment, "uf2", "a candidate of the new generation names it");
  assert.ok(broker.log.indexOf(`publish ${IN} offer`, 2) < broker.log.lastIndexOf(`publish ${IN} candidate`), "the offer goes out before its candidates");
  assert.deepEqual(hooks.entries.filter((e) => e.name === "state").map((e) => e.value[0]), ["calling", "connected", "reconnecting"]);
  assert.equal(call.stats.iceRestarts, 1);

  await deliver(call, broker, { type: "answer", sdp: "v=0 answer 2" });
  assert.equal(pc.remoteDescriptions.at(-1).sdp, "v=0 answer 2");
  await deliver(call, broker, { type: "candidate", candidate: "candidate:gen2", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "dev2" });
  assert.equal(pc.candidates.at(-1).usernameFragment, "dev2");
  pc.becomes("connected");
  assert.equal(hooks.entries.filter((e) => e.name === "state").at(-1).value[0], "connected");
  advance(RESTART_TIMEOUT_MS);
  assert.equal(pc.offerOptions.length, 2, "a restart that reconnected is not repeated");
  assert.ok(!call.closed);
});

test("an offer error during a restart is shown, and the call goes on", async (t) => {
  const { call, broker, hooks, pc } = await connectedCall(t);
  pc.becomes("failed");
  await broker.sent.next("offer");
  await deliver(call, broker, { type: "error", code: "bad-request", re: "offer", message: "The offer was refused." });
  assert.deepEqual(await hooks.next("problem"), ["bad-request", "Front door: The offer was refused."]);
  assert.ok(!call.closed);
});

test(`failed restarts at once; unanswered restarts are rolled back and retried; after ${MAX_ICE_RESTARTS} the call ends`, async (t) => {
  const { call, broker, hooks, pc, advance } = await connectedCall(t);
  pc.becomes("failed");
  await broker.sent.next("offer");
  assert.equal(pc.offerOptions.length, 2, "one restart for one failure, though both states report it");
  for (let i = 2; i <= MAX_ICE_RESTARTS; i++) {
    advance(RESTART_TIMEOUT_MS);
    await broker.sent.next("offer");
    assert.equal(pc.rollbacks, i - 1, "the unanswered offer is rolled back first");
  }
  assert.equal(call.stats.iceRestarts, MAX_ICE_RESTARTS);
  advance(RESTART_TIMEOUT_MS);
  const [outcome] = await hooks.next("ended");
  assert.equal(outcome.code, "connection-lost");
  assert.match((await broker.sent.next("bye")).reason, /ICE restarts/);
  assert.equal(pc.offerOptions.length, 1 + MAX_ICE_RESTARTS);
  assert.ok(pc.closed);
});

// ---- sealed calls ----

const VECTOR_SECRET = Uint8Array.from({ length: 32 }, (_, i) => i);
const keys = await deriveKeys(VECTOR_SECRET);
const STATUS_NONCE = "oKGio6SlpqeoqaqrrK2urw";

/**
 * A broker whose far end is a sealed device: what the call publishes is
 * opened (in publish order) into `sent` as `{ body, payload }`; `seal`
 * makes the device's next message (its own `seq`, or `seq` given).
 */
function sealedBroker() {
  const broker = fakeBroker();
  const sent = queue();
  let opening = Promise.resolve();
  let deviceSeq = 0;
  broker.sent = sent;
  broker.publish = (topic, payload) => {
    opening = opening.then(async () => {
      const plaintext = await open(payload, topic, keys.viewerToDevice);
      const body = plaintext === null ? null : JSON.parse(plaintext);
      broker.log.push(`publish ${topic} ${body?.type ?? "unopened"}`);
      sent.push(body?.type ?? "unopened", { body, payload });
    });
  };
  broker.seal = (body, { seq = ++deviceSeq, topic = OUT, direction = keys.deviceToViewer } = {}) => sealPayload({ v: 1, ...body, seq }, topic, direction);
  broker.deliverRaw = (text) => broker.routes.get(OUT)?.(new TextEncoder().encode(text));
  return broker;
}

/**
 * A sealed call to device `cam` that has offered, its device answering
 * through `broker.seal`; with `offered` false, one that has only asked for
 * ICE servers, unanswered.
 */
async function sealedCall(t, device = {}, { offered = true } = {}) {
  const broker = sealedBroker();
  const hooks = queue();
  const pcs = [];
  const record = (name) => (...args) => hooks.push(name, args);
  const call = new Call({
    broker,
    prefix: PREFIX,
    device: { id: "cam", name: "Front door", online: true, sealed: true, nonce: STATUS_NONCE, ...device },
    hooks: Object.fromEntries(["state", "ended", "closed", "problem", "track", "floor", "ring", "stats"].map((n) => [n, record(n)])),
    createPeerConnection: (config) => {
      pcs.push(new FakePeerConnection(config));
      return pcs[0];
    },
    openMic: async () => fakeMic(),
    now: () => 1000,
    sessionId: SESSION,
    keys,
  });
  t.after(() => call.close());
  call.start();
  const iceServers = await broker.sent.next("ice-servers");
  if (!offered) return { call, broker, hooks, iceServers };
  broker.deliverRaw(await broker.seal({ type: "ice-servers", ice_servers: [] }));
  const offer = await broker.sent.next("offer");
  return { call, broker, hooks, pc: pcs[0], iceServers, offer };
}

/** Delivers the device's sealed `body` (or a raw payload) and waits until the call has dealt with it. */
async function deliverSealed(call, broker, bodyOrPayload, options) {
  broker.deliverRaw(typeof bodyOrPayload === "string" ? bodyOrPayload : await broker.seal(bodyOrPayload, options));
  await call.inbox;
}

test("a sealed call seals every message on in/S, numbered from 1, and its first offer carries the status nonce", async (t) => {
  const { call, broker, iceServers, offer } = await sealedCall(t);
  assert.deepEqual(iceServers.body, { v: 1, type: "ice-servers", seq: 1 });
  assert.deepEqual(Object.keys(offer.body), ["v", "type", "sdp", "nonce", "seq"], "the body's fields in the vectors' order");
  assert.equal(offer.body.nonce, STATUS_NONCE);
  assert.equal(offer.body.seq, 2);
  const sealed = JSON.parse(offer.payload);
  assert.deepEqual(Object.keys(sealed), ["v", "kid", "seal"]);
  assert.equal(sealed.kid, keys.kid);
  assert.equal(await open(offer.payload, OUT, keys.viewerToDevice), null, "bound to in/S");
  const candidate = await broker.sent.next("candidate");
  assert.equal(candidate.body.seq, 3);
  assert.ok(!broker.sent.names().includes("unopened"), "nothing goes out in the clear");
  assert.equal(call.stats.sealed, true);
  call.end(null, null, "hung up");
  assert.deepEqual((await broker.sent.next("bye")).body, { v: 1, type: "bye", reason: "hung up", seq: 4 });
});

test("a sealed call acts on sealed messages that open on out/S and move seq on; it drops and counts the rest", async (t) => {
  const { call, broker, pc } = await sealedCall(t);
  const answer = await broker.seal({ type: "answer", sdp: "v=0 answer" });
  await deliverSealed(call, broker, answer);
  assert.equal(pc.remoteDescriptions.length, 1);
  await deliverSealed(call, broker, answer);
  assert.equal(pc.remoteDescriptions.length, 1, "an MQTT duplicate repeats its seq");
  assert.equal(call.stats.signalsDropped, 1);

  const dropped = [
    JSON.stringify({ v: 1, type: "answer", sdp: "v=0 plain" }),
    await broker.seal({ type: "answer", sdp: "v=0 old seq" }, { seq: 1 }),
    await broker.seal({ type: "answer", sdp: "v=0 in topic" }, { topic: IN }),
    await broker.seal({ type: "answer", sdp: "v=0 other key" }, { direction: keys.viewerToDevice }),
    await sealPayload({ v: 1, type: "answer", sdp: "v=0 no seq" }, OUT, keys.deviceToViewer),
    await sealPayload({ v: 2, type: "answer", sdp: "v=0 v2", seq: 99 }, OUT, keys.deviceToViewer),
    "not json",
  ];
  for (const payload of dropped) await deliverSealed(call, broker, payload);
  assert.equal(pc.remoteDescriptions.length, 1);
  assert.equal(call.stats.signalsDropped, 1 + dropped.length);

  await deliverSealed(call, broker, { type: "candidate", candidate: "candidate:sealed", sdpMid: "0", sdpMLineIndex: 0 });
  assert.equal(pc.candidates.at(-1).candidate, "candidate:sealed", "seq may jump forward");
  assert.ok(!call.closed);
});

test("an unsealed unauthorized ends a sealed call with a hint to pair again, and no bye", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { call, broker, hooks } = await sealedCall(t, {}, { offered: false });
  await deliverSealed(call, broker, JSON.stringify({ v: 1, type: "error", code: "unauthorized", re: "ice-servers", message: "Unknown key." }));
  const [outcome] = await hooks.next("ended");
  assert.equal(outcome.code, "unauthorized");
  assert.equal(outcome.message, "The camera does not accept this viewer's key — it may have been revoked. Pair again with `peercam pair`.");
  assert.ok(!broker.sent.names().includes("bye"));
});

test("once the device spoke sealed, an unsealed unauthorized is a forgery: dropped", async (t) => {
  const { call, broker } = await sealedCall(t);
  await deliverSealed(call, broker, JSON.stringify({ v: 1, type: "error", code: "unauthorized", re: "offer", message: "forged" }));
  assert.ok(!call.closed);
  assert.equal(call.stats.signalsDropped, 1);
});

test("a sealed stale answering the first offer ends the call quietly, to be placed again", async (t) => {
  const { call, broker, hooks } = await sealedCall(t);
  await deliverSealed(call, broker, { type: "error", code: "stale", re: "offer", message: "Re-read the status and call again." });
  const [outcome] = await hooks.next("ended");
  assert.equal(outcome.code, "stale");
  assert.ok(!broker.sent.names().includes("bye"), "an error on a first offer ends the session");
  assert.equal(callsAgain(outcome.code, 0), true);
});

test("a stale call is placed again a bounded number of times; nothing else is", () => {
  assert.equal(MAX_STALE_RETRIES, 2);
  assert.equal(callsAgain("stale", 0), true);
  assert.equal(callsAgain("stale", MAX_STALE_RETRIES - 1), true);
  assert.equal(callsAgain("stale", MAX_STALE_RETRIES), false);
  for (const code of ["busy", "unauthorized", "bad-request", null]) assert.equal(callsAgain(code, 0), false);
});

test("sealed talk replies and floor events name the paired viewer holding the floor; sealed rings ring", async (t) => {
  const { call, broker, hooks, pc } = await sealedCall(t, { audio: "sendrecv" });
  await deliverSealed(call, broker, { type: "answer", sdp: "v=0 answer" });
  pc.becomes("connected");
  call.talkInput({ type: "set", on: true });
  assert.deepEqual((await broker.sent.next("talk")).body, { v: 1, type: "talk", on: true, seq: 4 });
  await deliverSealed(call, broker, { type: "talk", granted: false, holder: "Bob's phone" });
  assert.equal(call.floor.holder, "Bob's phone");
  assert.equal(holderText(call.floor), "Bob's phone is talking");
  await deliverSealed(call, broker, { type: "event", event: { type: "talk", holder: "Carol" } });
  assert.equal(holderText(call.floor), "Carol is talking");
  await deliverSealed(call, broker, { type: "event", event: { type: "ring", at: "2026-11-23T19:00:00Z" } });
  assert.deepEqual(await hooks.next("ring"), [{ type: "ring", at: "2026-11-23T19:00:00Z" }]);
});

test("a sealed ICE restart offers again, sealed and numbered on, without a nonce", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { call, broker, pc } = await sealedCall(t);
  await deliverSealed(call, broker, { type: "answer", sdp: "v=0 answer" });
  pc.becomes("connected");
  pc.becomes("failed");
  const restart = await broker.sent.next("offer");
  assert.equal(restart.body.nonce, undefined);
  assert.ok(restart.body.seq > 2);
  assert.match(restart.body.sdp, /a=ice-ufrag:uf2/);
});

test("a key is used whatever the status says: no sealed flag, no nonce", async (t) => {
  const { offer } = await sealedCall(t, { sealed: undefined, nonce: undefined });
  assert.equal(offer.body.nonce, undefined);
  assert.equal(offer.body.seq, 2);
});

test("sealed-mode rules: what is opened, what is a hint, what is accepted", () => {
  const sealed = { v: 1, kid: keys.kid, seal: "AAAA" };
  const unauthorized = { v: 1, type: "error", code: "unauthorized" };
  assert.equal(classifyIncoming(sealed, { accepted: false, hinted: false }), "open");
  assert.equal(classifyIncoming(unauthorized, { accepted: false, hinted: false }), "hint");
  assert.equal(classifyIncoming(unauthorized, { accepted: false, hinted: true }), "drop", "once per session");
  assert.equal(classifyIncoming(unauthorized, { accepted: true, hinted: false }), "drop", "not after the device spoke sealed");
  assert.equal(classifyIncoming({ v: 1, type: "answer", sdp: "x" }, { accepted: false, hinted: false }), "drop");
  assert.equal(classifyIncoming(null, { accepted: false, hinted: false }), "drop");

  assert.deepEqual(acceptOpened('{"v":1,"type":"answer","seq":3}', 2).message, { v: 1, type: "answer", seq: 3 });
  assert.equal(acceptOpened('{"v":1,"type":"answer","seq":2}', 2).drop, "replayed seq");
  assert.equal(acceptOpened('{"v":1,"type":"answer","seq":"3"}', 0).drop, "no seq");
  assert.equal(acceptOpened('{"v":1,"type":"answer","seq":1.5}', 0).drop, "no seq");
  assert.equal(acceptOpened('{"v":1,"type":"answer","seq":0}', 0).drop, "no seq");
  assert.equal(acceptOpened('{"v":1,"seq":3}', 0).drop, "not a v1 message");
  assert.equal(acceptOpened("[]", 0).drop, "not a v1 message");
});
