// One WebRTC call with one device, signaled on `P/D/in/S` and `P/D/out/S`
// per PROTOCOL.md: in plain mode, or sealed (sealed.js) when the viewer
// holds a key for the device. Never touches the page: it reports through
// `hooks`, and everything that reaches outside (the broker, the peer
// connection, the mic, the clock) is passed in.

import { floorReducer, initialFloor } from "./floor.js";
import {
  DEDUPLICATED_TYPES, candidateBody, candidateInit, decodeSessionMessage, encodeBody, iceServersFrom, iceUfrag, randomSessionId, sessionTopics,
} from "./protocol.js";
import { initialRestart, pathEvent, restartReducer } from "./restart.js";
import { SealedSession, UNAUTHORIZED_HINT } from "./sealed.js";
import { emptyStats, readStats } from "./stats.js";

/** How long the device may take to answer `ice-servers` before the status list is used. */
const ICE_SERVERS_WAIT_MS = 2000;
/** How long after the offer media may take to connect before the call gives up. */
const CONNECT_TIMEOUT_MS = 25000;
/** How often the stats are read while connected. */
const STATS_INTERVAL_MS = 1000;

/** How many times in a row a call turned down as `stale` is placed again, on a fresh session with the status re-read. */
export const MAX_STALE_RETRIES = 2;

const NO_PATH_HINT = "If the device is behind NAT, configure a TURN server in its ice_servers.";
const TALKING_DIRECTIONS = ["sendrecv", "sendonly"];

/**
 * What an `error` from the device means for the call, given the device's
 * `name` and whether media has `connected` (then an `offer` error answers
 * a later offer, an ICE restart):
 * - `{ kind: "talk-refused", code, message }`: no floor; the call goes on;
 * - `{ kind: "end", code, message, quiet }`: the call is over (`quiet`:
 *   it answered our first offer, so the device sends no `bye` and wants none);
 * - `{ kind: "show", code, message }`: worth saying; the call goes on.
 */
export function deviceErrorOutcome(error, { name, connected }) {
  const detail = typeof error.message === "string" ? error.message : "";
  const code = error.code || "internal";
  const firstOffer = error.re === "offer" && !connected;
  if (error.re === "talk") return { kind: "talk-refused", code, message: `${name} cannot take talk-back: ${detail || error.code}` };
  if (error.code === "busy") {
    return { kind: "end", code: "busy", message: `${name} is busy: it already serves as many viewers as it allows. ${detail}`.trim(), quiet: firstOffer };
  }
  if (firstOffer || error.re === "ice-servers") return { kind: "end", code, message: `${name} refused the call: ${detail || error.code}`, quiet: firstOffer };
  return { kind: "show", code, message: `${name}: ${detail || error.code}` };
}

/**
 * How a device's `bye` ends the call, as `end()` arguments: before media
 * ever connected it is a connectivity error (and needs no `bye` back);
 * after, a normal end with the device's reason.
 */
export function byeOutcome(bye, everConnected) {
  const reason = bye.reason;
  if (!everConnected) {
    return {
      code: "no-connectivity",
      message: `The device ended the call before media connected${reason ? ` (${reason})` : ""}. ${NO_PATH_HINT}`,
      note: null,
      quiet: true,
    };
  }
  return { code: null, message: null, note: `the device ended the call${reason ? `: ${reason}` : ""}`, quiet: false };
}

/**
 * Whether a call that ended with `code` is placed again after `retries`
 * such retries: only a sealed offer the device found `stale` (an old status
 * nonce), a bounded number of times.
 */
export function callsAgain(code, retries) {
  return code === "stale" && retries < MAX_STALE_RETRIES;
}

/**
 * A call. It tells the page through `hooks`, all required:
 * `state("calling" | "connected" | "reconnecting")` ("reconnecting": an
 * ICE restart is under way, see restart.js), `ended({ code, message, note })` (an
 * error when `code` is set, else a normal end with `note`),
 * `closed()` (media gone), `problem(code, message)` (worth showing; the
 * call goes on), `track(track, streams)`, `floor()` (talk state changed),
 * `ring(event)`, `stats()` (new numbers in `stats`).
 */
export class Call {
  /**
   * `broker` subscribes, unsubscribes and publishes (a BrokerLink);
   * `createPeerConnection(config)` and `openMic()` (a disabled track or
   * null) reach the browser; `now()` is the clock the timings use.
   * `relayOnly` makes the browser use TURN-relayed candidates only.
   * `keys` (seal.js `deriveKeys`) make the call sealed: then every message
   * is sealed, the first offer carries the device's status `nonce`, and
   * only sealed messages from the device are acted on.
   */
  constructor({ broker, prefix, device, hooks, createPeerConnection, openMic, now, sessionId = randomSessionId(), relayOnly = false, keys = null }) {
    this.broker = broker;
    this.device = device;
    this.hooks = hooks;
    this.createPeerConnection = createPeerConnection;
    this.openMic = openMic;
    this.now = now;
    this.sessionId = sessionId;
    this.relayOnly = relayOnly;
    this.topics = sessionTopics(prefix, device.id, sessionId);
    this.sealed = keys ? new SealedSession(keys, this.topics) : null;
    this.outbox = Promise.resolve();
    this.pc = null;
    this.closed = false;
    this.connected = false;
    this.lastPayload = Object.fromEntries(DEDUPLICATED_TYPES.map((type) => [type, null]));
    this.inbox = Promise.resolve();
    this.iceServersReply = null;
    this.offerPublished = false;
    this.holdingCandidates = true;
    this.pendingCandidates = [];
    this.offerAt = 0;
    this.stats = { ...emptyStats(), sealed: this.sealed !== null };
    this.statsSample = null;
    this.statsTimer = null;
    this.connectTimer = null;
    this.iceRestart = initialRestart();
    this.restartTimer = null;
    this.mic = null;
    this.audioDirection = null;
    this.audioTransceiver = null;
    this.remoteAudio = false;
    this.floor = initialFloor();
  }

  /** Subscribes, gets ICE servers (and the mic, for a two-way device), offers. */
  async start() {
    this.hooks.state("calling");
    try {
      await this.broker.subscribe(this.topics.out, (payload) => this.onSignal(payload));
      const [iceServers, mic] = await Promise.all([this.askIceServers(), this.device.audio === "sendrecv" ? this.openMic() : null]);
      if (this.closed) {
        mic?.stop();
        return;
      }
      this.mic = mic;
      this.pc = this.createPeerConnection({ iceServers, bundlePolicy: "max-bundle", ...(this.relayOnly ? { iceTransportPolicy: "relay" } : {}) });
      this.watchPeerConnection();
      this.pc.addTransceiver("video", { direction: "recvonly" });
      this.audioTransceiver = this.addAudio();
      await this.pc.setLocalDescription(await this.pc.createOffer());
      this.send({ type: "offer", sdp: this.pc.localDescription.sdp, ...this.openingNonce() });
      this.offerAt = this.now();
      this.offerPublished = true;
      this.releaseCandidates();
      this.connectTimer = setTimeout(() => {
        if (this.pc.connectionState !== "connected") {
          this.end("no-connectivity", `No network path to the device: WebRTC could not connect. ${NO_PATH_HINT}`);
        }
      }, CONNECT_TIMEOUT_MS);
    } catch (e) {
      this.end("internal", `Could not start the call: ${e.message}`);
    }
  }

  /** Offers two-way audio when there is a (still silent) mic; otherwise listens only. */
  addAudio() {
    if (this.mic) {
      this.audioDirection = "sendrecv";
      return this.pc.addTransceiver(this.mic, { direction: "sendrecv" });
    }
    this.audioDirection = "recvonly";
    return this.pc.addTransceiver("audio", { direction: "recvonly" });
  }

  /** Asks the device for ICE servers; falls back to the (credential-free) status list. */
  askIceServers() {
    const fallback = iceServersFrom(this.device.ice_servers, []);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(fallback), ICE_SERVERS_WAIT_MS);
      this.iceServersReply = (servers) => {
        clearTimeout(timer);
        resolve(iceServersFrom(servers, fallback));
      };
      this.send({ type: "ice-servers" });
    });
  }

  /** The `nonce` field of a sealed call's first offer: the device's status nonce when it has one. */
  openingNonce() {
    return this.sealed && typeof this.device.nonce === "string" ? { nonce: this.device.nonce } : {};
  }

  /**
   * Publishes `body` on `in/S`; after the call closed, only a `bye`. A
   * sealed body is numbered at once and published once sealed, after every
   * earlier one.
   */
  send(body) {
    if (this.closed && body.type !== "bye") return;
    if (!this.sealed) {
      this.broker.publish(this.topics.in, encodeBody(body));
      return;
    }
    const sealing = this.sealed.seal(body);
    this.outbox = this.outbox
      .then(() => sealing)
      .then((payload) => this.broker.publish(this.topics.in, payload))
      .catch((e) => console.warn("peercam: message not sealed", e));
  }

  /** Sends the candidates gathered while the offer they belong to was not out yet. */
  releaseCandidates() {
    this.holdingCandidates = false;
    this.pendingCandidates.splice(0).forEach((c) => this.send(c));
  }

  /** Trickles our candidates, hands remote tracks to the page, and follows the connection state. */
  watchPeerConnection() {
    const pc = this.pc;
    pc.onicecandidate = ({ candidate }) => {
      const body = candidateBody(candidate, pc.getTransceivers()[0]?.mid, iceUfrag(pc.localDescription?.sdp));
      if (this.holdingCandidates) this.pendingCandidates.push(body);
      else this.send(body);
    };
    pc.ontrack = ({ track, streams }) => {
      if (track.kind === "audio") this.remoteAudio = true;
      this.hooks.track(track, streams);
    };
    const followPath = () => this.updateRestart({ type: pathEvent(pc.iceConnectionState, pc.connectionState) });
    pc.oniceconnectionstatechange = followPath;
    pc.onconnectionstatechange = () => {
      if (this.closed) return;
      if (pc.connectionState === "connected") {
        clearTimeout(this.connectTimer);
        this.stats.connectMs ??= Math.round(this.now() - this.offerAt);
        this.connected = true;
        this.hooks.state("connected");
        this.startStats();
      }
      followPath();
    };
  }

  /** Feeds the ICE restart reducer (restart.js) an event and carries out what it decides. */
  updateRestart(event) {
    if (this.closed) return;
    const { state, actions } = restartReducer(this.iceRestart, event, this.now());
    this.iceRestart = state;
    for (const action of actions) {
      switch (action.type) {
        case "restart":
          this.stats.iceRestarts = state.restarts;
          this.hooks.state("reconnecting");
          this.inbox = this.inbox.then(() => this.restartIce()).catch((e) => console.warn("peercam: ICE restart", e));
          break;
        case "wake":
          clearTimeout(this.restartTimer);
          this.restartTimer = setTimeout(() => this.updateRestart({ type: "wake" }), action.inMs);
          break;
        case "sleep":
          clearTimeout(this.restartTimer);
          break;
        case "end":
          this.end(action.code, action.message);
          break;
      }
    }
  }

  /**
   * Offers again on the same session with fresh ICE credentials; the
   * device answers and both trickle as at the start. Runs in the inbox's
   * order, so no answer is being applied meanwhile. An offer still waiting
   * for its answer (an earlier restart) is rolled back first.
   */
  async restartIce() {
    if (this.closed) return;
    this.holdingCandidates = true;
    try {
      if (this.pc.signalingState === "have-local-offer") await this.pc.setLocalDescription({ type: "rollback" });
      await this.pc.setLocalDescription(await this.pc.createOffer({ iceRestart: true }));
      this.send({ type: "offer", sdp: this.pc.localDescription.sdp });
    } finally {
      this.releaseCandidates();
    }
  }

  /** The page showed the first video frame: records the time to first frame once. */
  firstFrameShown() {
    if (!this.closed && this.stats.ttffMs === null) this.stats.ttffMs = Math.round(this.now() - this.offerAt);
  }

  /**
   * A payload on `out/S`: drops (and counts) what is not v1, and MQTT
   * duplicates; applies the rest in order. A sealed call opens and
   * checks each payload first, in the same order (receiveSealed).
   */
  onSignal(payload) {
    if (this.sealed) {
      this.inbox = this.inbox.then(() => this.receiveSealed(payload)).catch((e) => console.warn("peercam: signal not applied", e));
      return;
    }
    const decoded = decodeSessionMessage(payload);
    if (!decoded) {
      this.stats.signalsDropped += 1;
      return;
    }
    const { message, text } = decoded;
    if (message.type in this.lastPayload) {
      if (this.lastPayload[message.type] === text) return;
      this.lastPayload[message.type] = text;
    }
    this.inbox = this.inbox.then(() => this.apply(message)).catch((e) => console.warn("peercam: signal not applied", e));
  }

  /**
   * A payload on a sealed call's `out/S`: acted on when it opens and moves
   * `seq` on; otherwise dropped and counted. The device's unsealed
   * `unauthorized` ends the call with a hint to pair again; the key is kept.
   */
  async receiveSealed(payload) {
    if (this.closed) return;
    const outcome = await this.sealed.receive(payload);
    if (outcome.hint) {
      this.end("unauthorized", UNAUTHORIZED_HINT, null, true);
      return;
    }
    if (outcome.drop) {
      this.stats.signalsDropped += 1;
      return;
    }
    await this.apply(outcome.message);
  }

  /** Acts on one device message; called in arrival order. */
  async apply(message) {
    if (this.closed) return;
    switch (message.type) {
      case "ice-servers":
        this.iceServersReply?.(message.ice_servers);
        break;
      case "answer":
        await this.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
        break;
      case "candidate":
        if (!this.pc?.remoteDescription) return;
        await this.pc.addIceCandidate(candidateInit(message, this.pc.getTransceivers()[0]?.mid));
        break;
      case "talk":
        this.updateFloor({ type: "reply", granted: message.granted, holder: message.holder });
        break;
      case "event":
        this.onEvent(message.event);
        break;
      case "error":
        this.onDeviceError(message);
        break;
      case "bye": {
        const { code, message: text, note, quiet } = byeOutcome(message, this.stats.connectMs !== null);
        this.end(code, text, note, quiet);
        break;
      }
    }
  }

  /** An `error` from the device: see deviceErrorOutcome. */
  onDeviceError(error) {
    const outcome = deviceErrorOutcome(error, { name: this.device.name || this.device.id, connected: this.connected });
    switch (outcome.kind) {
      case "talk-refused":
        this.updateFloor({ type: "refused", code: error.code });
        this.hooks.problem(outcome.code, outcome.message);
        break;
      case "end":
        this.end(outcome.code, outcome.message, null, outcome.quiet);
        break;
      case "show":
        this.hooks.problem(outcome.code, outcome.message);
        break;
    }
  }

  /** A device event: a doorbell ring, or the talk floor changing hands. */
  onEvent(event) {
    if (!event || typeof event !== "object") return;
    if (event.type === "ring") this.hooks.ring(event);
    else if (event.type === "talk") this.updateFloor({ type: "changed", event });
  }

  /**
   * Talk-button input or a talk request (floor events "press", "release",
   * "toggle", "set"); false when the call cannot carry one (not offered
   * yet, or over).
   */
  talkInput(event) {
    if (this.closed || !this.offerPublished) return false;
    this.updateFloor(event);
    return true;
  }

  /** Moves the floor on, sends the `talk` it calls for, and lets the mic speak only while we hold it. */
  updateFloor(event) {
    this.floor = floorReducer(this.floor, event);
    if (this.floor.send !== null) this.send({ type: "talk", on: this.floor.send });
    if (this.mic) this.mic.enabled = this.floor.holding && !this.closed;
    this.hooks.floor();
  }

  /** Talk needs connected media, a device that listens, a mic and an answer that takes our audio. */
  canTalk() {
    return this.connected && !this.closed && this.device.audio === "sendrecv" && this.mic !== null
      && this.audioDirection === "sendrecv" && !this.floor.unsupported
      && TALKING_DIRECTIONS.includes(this.audioTransceiver?.currentDirection);
  }

  /** Reads the stats now and every STATS_INTERVAL_MS until the call closes. */
  startStats() {
    if (this.statsTimer) return;
    const tick = async () => {
      if (this.closed) return;
      try {
        const { values, sample } = readStats(await this.pc.getStats(), {
          sample: this.statsSample, ttffMs: this.stats.ttffMs, offerAt: this.offerAt, now: this.now(),
        });
        if (this.closed) return;
        this.statsSample = sample;
        Object.assign(this.stats, values);
        this.hooks.stats();
      } catch (e) {
        console.warn("peercam: stats", e);
      }
    };
    tick();
    this.statsTimer = setInterval(tick, STATS_INTERVAL_MS);
  }

  /** Ends the call; `code`/`message` make it an error, `note` a normal end. `quiet` skips our `bye`. */
  end(code, message, note, quiet = false) {
    if (this.closed) return;
    if (!quiet) this.send({ type: "bye", reason: message || note || "viewer left" });
    this.close();
    this.hooks.ended({ code, message, note });
  }

  /** Stops everything without a word to the device (the page is starting over). */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.connectTimer);
    clearTimeout(this.restartTimer);
    clearInterval(this.statsTimer);
    this.broker.unsubscribe(this.topics.out);
    this.pc?.close();
    this.mic?.stop();
    this.floor = floorReducer(this.floor, { type: "ended" });
    this.hooks.closed();
  }
}
