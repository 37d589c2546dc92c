// peercam web viewer: finds devices through their retained MQTT status,
// calls one over WebRTC with signaling per PROTOCOL.md (plain mode, or
// sealed with the key of a pairing link), and shows the video with live
// statistics, plays the device's audio, talks back on the floor the device
// grants, and alerts on doorbell rings. No build step: this entry module
// and js/ are served as they are.
//
// This module holds the page's state and wires the parts together:
// js/broker.js (the MQTT link and device list), js/call.js (one call),
// js/sealed.js and js/seal.js (sealed signaling), js/floor.js (talk
// floor), js/stats.js, js/glass.js (glass-to-glass latency from the test
// source's stamp), js/link.js (pairing links), js/paired.js (the paired
// doorbells this browser keeps), js/mic.js, and js/view.js (the DOM).

import { BrokerLink } from "./js/broker.js";
import { Call, callsAgain } from "./js/call.js";
import { floorSnapshot, holderText } from "./js/floor.js";
import { GlassWindow, glassToGlassMs } from "./js/glass.js";
import { defaultBrokerUrl, linkFragment, mixedContentProblem, pairingFromLink, parseLink, withoutSecrets } from "./js/link.js";
import { openMic } from "./js/mic.js";
import { PairedDevices, linkFromPairing, pairedLabel } from "./js/paired.js";
import { keysFromKeyString } from "./js/seal.js";
import { describeStats, emptyStats } from "./js/stats.js";
import { createView } from "./js/view.js";

const UNPAIRED = "This camera only accepts paired viewers; open the pairing link from `peercam pair`.";
const CALLABLE_STATES = ["ready", "ended", "error"];
const CALLING_STATES = ["calling", "connected", "reconnecting"];

/** Everything the page knows; `window.peercamViewer` exposes it read-only. */
const viewer = {
  state: "idle",
  error: null,
  selected: null,
  link: null,
  broker: null,
  call: null,
  userMuted: false,
  soundBlocked: false,
  audioNote: null,
  rings: [],
  staleRetries: 0,
  opening: 0,
  glass: new GlassWindow(),
};

/** The doorbells this browser is paired with; in memory only where the page may not use localStorage. */
const paired = new PairedDevices(browserStorage());

const view = createView(document, {
  connect: connectFromForm,
  select: selectDevice,
  call: startCall,
  hangup,
  talk: (event) => liveCall()?.talkInput(event) ?? false,
  mute,
  openPaired,
  forget,
});

view.watchGlass((stamp, shownAt) => viewer.glass.add(shownAt, glassToGlassMs(stamp, shownAt)));

/** Wall-clock ms since the epoch on the clock the glass samples are timed with. */
function wallNow() {
  return performance.timeOrigin + performance.now();
}

/** `localStorage`, or storage that keeps nothing where the browser refuses it (paired.js then keeps the list in memory). */
function browserStorage() {
  try {
    return window.localStorage;
  } catch {
    return { getItem: () => null, setItem() {} };
  }
}

// ---- state and messages ----

function devices() {
  return viewer.broker ? [...viewer.broker.devices.values()] : [];
}

function setState(state) {
  viewer.state = state;
  const device = viewer.selected && viewer.broker?.devices.get(viewer.selected);
  view.renderState(state, {
    canCall: CALLABLE_STATES.includes(state) && !!device && !!viewer.broker?.connected,
    canHangup: CALLING_STATES.includes(state),
  });
  renderAudio();
}

function showError(code, message) {
  viewer.error = { code, message };
  view.showError(message);
}

function clearError() {
  viewer.error = null;
  view.hideError();
}

function fail(code, message) {
  showError(code, message);
  setState("error");
}

// ---- broker and device list ----

function connectBroker(link) {
  const refused = mixedContentProblem(link.broker, location.protocol);
  if (refused) {
    fail("broker", refused);
    return;
  }
  clearError();
  setState("connecting-broker");
  try {
    viewer.broker = new BrokerLink({
      url: link.broker,
      prefix: link.prefix,
      username: link.username,
      password: link.password,
      handlers: brokerHandlers(link),
    });
  } catch (e) {
    fail("broker", `Cannot use broker address "${link.broker}": ${e.message}. Use ws://host:port or wss://host:port.`);
  }
}

/** What the page does when the broker link reports; a call in progress outlives broker trouble. */
function brokerHandlers(link) {
  const inCall = () => CALLING_STATES.includes(viewer.state);
  return {
    ready() {
      if (viewer.error?.code === "broker") clearError();
      if (viewer.state === "connecting-broker" || (viewer.state === "error" && !viewer.error)) setState("ready");
      else setState(viewer.state);
    },
    refused(err) {
      fail("broker", err.message);
    },
    error(err) {
      if (!inCall()) fail("broker", `Cannot connect to the broker at ${link.broker}: ${err.message}`);
    },
    offline() {
      if (!inCall() && !viewer.error) fail("broker", `Cannot reach the broker at ${link.broker}; retrying. Check the address and that it has a WebSocket listener.`);
    },
    devices() {
      renderDevices();
      maybeAutoCall();
    },
  };
}

function renderDevices() {
  const prefix = viewer.link?.prefix;
  const listed = devices().sort((a, b) => a.id.localeCompare(b.id)).map((device) => ({ ...device, paired: !!paired.find(prefix, device.id) }));
  view.renderDevices(listed, viewer.selected);
  renderPaired();
  setState(viewer.state);
}

/** The paired doorbells, the one on screen marked, and whether the one on screen can be forgotten. */
function renderPaired() {
  const prefix = viewer.link?.prefix;
  view.renderPaired(
    paired.list().map((entry) => ({ prefix: entry.prefix, device: entry.device, label: pairedLabel(entry), current: entry.prefix === prefix && entry.device === viewer.selected })),
    !!paired.find(prefix, viewer.selected),
  );
}

/** Opens a paired doorbell from the list: its broker, its device, a call at once. */
function openPaired(prefix, device) {
  const entry = paired.find(prefix, device);
  if (!entry) return;
  const link = linkFromPairing(entry);
  history.replaceState(null, "", linkFragment(link, link.device));
  start(link);
}

/** Forgets the doorbell on screen and its key, ending a call with it. */
function forget() {
  const prefix = viewer.link?.prefix;
  const device = viewer.selected;
  if (!paired.forget(prefix, device)) return;
  if (liveCall()?.device.id === device) viewer.call.end(null, null, "this doorbell was forgotten");
  renderDevices();
}

function selectDevice(id) {
  viewer.selected = id;
  history.replaceState(null, "", linkFragment(view.formValues(), id, { relay: viewer.link?.relay }));
  renderDevices();
}

function maybeAutoCall() {
  const link = viewer.link;
  if (!link || !link.auto || !link.device || viewer.state !== "ready") return;
  const device = viewer.broker.devices.get(link.device);
  if (device && device.online) {
    link.auto = false;
    clearError();
    startCall();
  } else if (device) {
    showError("offline", `${device.name || device.id} is offline: it is not connected to the broker. The call starts when it comes back.`);
  }
}

// ---- the call ----

/**
 * Calls the selected device: sealed when this browser is paired with it,
 * plain otherwise, and not at all when its status says it only takes
 * paired viewers. `again` is a call placed anew after a `stale` one, which
 * keeps counting the retries.
 */
async function startCall({ again = false } = {}) {
  const broker = viewer.broker;
  const id = viewer.selected;
  const device = id && broker?.devices.get(id);
  if (!broker || !broker.connected) {
    fail("broker", "Not connected to a broker.");
    return;
  }
  if (!device) {
    fail("offline", `No device "${id ?? ""}" has announced itself under prefix ${viewer.link.prefix}.`);
    return;
  }
  if (!device.online) {
    fail("offline", `${device.name || id} is offline: it is not connected to the broker.`);
    return;
  }
  const pairing = paired.find(viewer.link.prefix, id);
  if (!pairing && device.sealed) {
    fail("unpaired", UNPAIRED);
    return;
  }
  let keys = null;
  if (pairing) {
    try {
      keys = await keysFromKeyString(pairing.key);
    } catch (e) {
      fail("pairing", e.message);
      return;
    }
    if (viewer.broker !== broker || viewer.selected !== id) return;
    paired.use(pairing.prefix, id, device.name || null);
  }
  if (!again) viewer.staleRetries = 0;
  viewer.call?.close();
  viewer.glass = new GlassWindow();
  clearError();
  setAudioNote(null);
  const call = new Call({
    broker,
    prefix: viewer.link.prefix,
    device,
    hooks: callHooks(() => call),
    createPeerConnection: (config) => new RTCPeerConnection(config),
    openMic: async () => {
      const { track, note } = await openMic();
      if (note) setAudioNote(note);
      return track;
    },
    now: () => performance.now(),
    relayOnly: viewer.link.relay,
    keys,
  });
  viewer.call = call;
  renderPaired();
  call.start();
}

/**
 * The device found the sealed call `stale`: reads its status (its nonce)
 * again and calls on a fresh session, unless meanwhile the user hung up or
 * the page moved on.
 */
async function callAgainAfterStale(stale) {
  const broker = viewer.broker;
  viewer.staleRetries += 1;
  await broker.refreshStatus(stale.device.id);
  if (viewer.call === stale && viewer.broker === broker && viewer.selected === stale.device.id) startCall({ again: true });
}

/** What the page does when a call reports; `current()` is the call, and only the page's current call has a say. */
function callHooks(current) {
  const live = (fn) => (...args) => {
    if (viewer.call === current()) fn(...args);
  };
  return {
    state: live((state) => {
      if (state === "connected") viewer.staleRetries = 0;
      setState(state);
    }),
    ended: live(({ code, message, note }) => {
      if (callsAgain(code, viewer.staleRetries)) {
        callAgainAfterStale(current());
        return;
      }
      if (code) {
        fail(code, message);
        return;
      }
      if (note) showError(null, note);
      setState("ended");
    }),
    closed: live(() => {
      view.detachMedia();
      renderAudio();
    }),
    problem: live(showError),
    track: live((track, streams) => {
      view.attachTrack(track, streams);
      play();
      if (track.kind === "video") view.onFirstFrame(() => current().firstFrameShown());
    }),
    floor: live(renderAudio),
    ring: live((event) => {
      viewer.rings.push(event);
      view.showRing(event, current().device);
    }),
    stats: live(() => view.renderStats(describeStats(current().stats, viewer.glass.median(wallNow())))),
  };
}

/** Ends the call; one already over (waiting to be placed again after `stale`) is let go. */
function hangup() {
  if (viewer.call?.closed) {
    viewer.call = null;
    setState("ended");
    return;
  }
  viewer.call?.end(null, null, "hung up");
}

// ---- audio ----

function setAudioNote(note) {
  viewer.audioNote = note;
  renderAudio();
}

/** The call whose media is live, if any. */
function liveCall() {
  return viewer.call && !viewer.call.closed ? viewer.call : null;
}

/**
 * Plays the call's stream, with sound unless the user muted it. Where
 * autoplay forbids sound, it plays muted and the page offers to unmute.
 */
async function play() {
  const playing = view.playVideo(!!liveCall()?.remoteAudio && !viewer.userMuted);
  if (!playing) return;
  renderAudio();
  const outcome = await playing;
  if (outcome === "sound") viewer.soundBlocked = false;
  if (outcome === "blocked") viewer.soundBlocked = true;
  renderAudio();
}

function mute(muted) {
  viewer.userMuted = muted;
  return play();
}

function renderAudio() {
  const call = liveCall();
  view.renderAudio({
    talkable: !!call && viewer.state === "connected" && call.canTalk(),
    want: !!call?.floor.want,
    holding: !!call?.floor.holding,
    holder: holderText(call?.floor),
    sound: !!call?.remoteAudio,
    soundBlocked: viewer.soundBlocked,
    note: viewer.audioNote,
  });
}

// ---- the link, and starting over ----

/** The form was submitted: connect with what it holds (the password too, which no address ever carries). */
function connectFromForm() {
  const form = view.formValues();
  const fragment = linkFragment(form, viewer.selected, { relay: viewer.link?.relay });
  history.replaceState(null, "", fragment);
  start({ ...parseLink(fragment), password: form.password || null });
}

/** The link in the address, with its password and key taken out of the address (and so out of history). */
function linkFromAddress() {
  const link = parseLink(location.hash);
  const stripped = withoutSecrets(location.hash);
  if (stripped !== null) history.replaceState(null, "", stripped || location.pathname + location.search);
  return link;
}

/**
 * Opens what the address says: a pairing link's key is checked and the
 * doorbell kept (a damaged link is refused with what to do); a bare page
 * opens the doorbell used last.
 */
async function openAddress() {
  const opening = ++viewer.opening;
  const link = linkFromAddress();
  if (link?.key && !link.problem) {
    try {
      paired.remember(await pairingFromLink(link));
    } catch (e) {
      if (opening === viewer.opening) start({ problem: e.message, code: "pairing" });
      return;
    }
  }
  if (opening !== viewer.opening) return;
  const last = paired.last();
  start(link ?? (last && linkFromPairing(last)));
}

/**
 * Starts over with `link` (null: the bare page, a form to fill): ends any
 * call and broker link, then connects to the link's broker. A link with a
 * `problem` (another protocol version, a damaged pairing link) is shown,
 * not followed.
 */
function start(link) {
  viewer.opening += 1;
  viewer.call?.close();
  viewer.call = null;
  viewer.broker?.end();
  viewer.broker = null;
  viewer.link = link;
  renderDevices();
  if (!link) {
    view.fillForm({ broker: defaultBrokerUrl(location) });
    clearError();
    setState("idle");
    return;
  }
  if (link.problem) {
    fail(link.code ?? "unsupported", link.problem);
    return;
  }
  view.fillForm({ broker: link.broker, prefix: link.prefix, username: link.username, password: link.password });
  viewer.selected = link.device;
  renderPaired();
  connectBroker(link);
}

window.addEventListener("hashchange", openAddress);
window.addEventListener("pagehide", () => viewer.call?.end(null, null, "page closed"));

window.peercamViewer = {
  get state() { return viewer.state; },
  get error() { return viewer.error; },
  get devices() { return devices(); },
  get sessionId() { return viewer.call?.sessionId ?? null; },
  get sealed() { return !!viewer.call?.sealed; },
  get paired() { return paired.list().map(({ broker, prefix, device, name, username, label }) => ({ broker, prefix, device, name, username, label })); },
  get stats() { return viewer.call ? { ...viewer.call.stats } : emptyStats(); },
  get talk() { return floorSnapshot(viewer.call?.floor); },
  get rings() { return viewer.rings.map((r) => ({ ...r })); },
  /** Glass-to-glass latency (ms) of the frames sampled in the last 2 s: the latest, the median the overlay shows, and each `{ at, ms }`. */
  get glass() {
    return { latestMs: viewer.glass.latestMs, medianMs: viewer.glass.median(wallNow()), samples: viewer.glass.samples.map((s) => ({ ...s })) };
  },
  get ringVisible() { return view.ringVisible; },
  get audio() {
    const mic = liveCall()?.mic;
    return {
      direction: viewer.call?.audioDirection ?? null,
      micTrack: mic?.readyState === "live",
      micEnabled: mic?.readyState === "live" && mic.enabled,
      muted: view.videoMuted,
      soundBlocked: viewer.soundBlocked && view.videoMuted,
      note: viewer.audioNote,
    };
  },
  call: startCall,
  hangup,
  setTalk: (on) => liveCall()?.talkInput({ type: "set", on: on === true }) ?? false,
  mute: (muted) => mute(muted !== false),
  forget,
};

openAddress();
