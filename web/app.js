// peercam web viewer: finds devices through their retained MQTT status,
// calls one over WebRTC with signaling per PROTOCOL.md (plain mode, or
// sealed with the key of a pairing link), and shows the video with live
// statistics, plays the device's audio, talks back on the floor the device
// grants, and answers doorbell rings on a call screen. No build step: this
// entry module and js/ are served as they are.
//
// This module holds the page's state and wires the parts together:
// js/broker.js (the MQTT link, device list and events), js/call.js (one
// call), js/sealed.js and js/seal.js (sealed signaling), js/floor.js
// (talk floor), js/stats.js, js/glass.js (glass-to-glass latency from the
// test source's stamp), js/link.js (pairing links), js/paired.js (the
// paired doorbells this browser keeps), js/rings.js (recent rings),
// js/presence.js (since when a doorbell is offline), js/situation.js
// (what the page tells a person), js/mic.js, and js/view.js (the DOM).

import { BrokerLink } from "./js/broker.js";
import { Call, callsAgain } from "./js/call.js";
import { floorSnapshot, holderText, talkButtonText } from "./js/floor.js";
import { GlassWindow, glassToGlassMs } from "./js/glass.js";
import { defaultBrokerUrl, linkFragment, mixedContentProblem, pairingFromLink, parseLink, withoutSecrets } from "./js/link.js";
import { openMic } from "./js/mic.js";
import { PairedDevices, linkFromPairing, pairedLine } from "./js/paired.js";
import { Presence, offlineText } from "./js/presence.js";
import { RingLog, ringFrom, ringLine } from "./js/rings.js";
import { keysFromKeyString } from "./js/seal.js";
import { situation, stateLabel } from "./js/situation.js";
import { describeStatsLine, emptyStats } from "./js/stats.js";
import { createView } from "./js/view.js";
import { clock } from "./js/when.js";

const UNPAIRED = "This camera only accepts paired viewers; open the pairing link from `peercam pair`.";
const CALLABLE_STATES = ["ready", "ended", "error"];
const CALLING_STATES = ["calling", "connected", "reconnecting"];
/** Error codes the situation line explains (situation.js), so the picture does not say them again. */
const SITUATION_ERRORS = ["broker", "offline"];
/** The address marker of a page opened to answer a ring (a notification, a home-automation link): the last doorbell, on the call screen. */
const RING_MARKER = "#ring";
/** The storage item remembering that the user hid the stats overlay. */
const STATS_HIDDEN_KEY = "peercam.statsHidden";

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
  /** The broker link: "none", "connecting", "up", "reconnecting" (it was up) or "down" (never reached). */
  brokerState: "none",
  network: navigator.onLine,
  /** The ring the call screen shows (rings.js), or null when it is closed. */
  ringShown: null,
  /** The call was placed by a ring (muted, ended again by Dismiss). */
  ringCall: false,
  /** Wall-clock ms at which the current call showed its first frame. */
  firstFrameAt: null,
  wasHolding: false,
  /** What the situation line says (situation.js), or null. */
  situation: null,
};

const storage = browserStorage();
/** The doorbells this browser is paired with; in memory only where the page may not use localStorage. */
const paired = new PairedDevices(storage);
const ringLog = new RingLog(storage);
const presence = new Presence(storage);

const view = createView(document, {
  connect: connectFromForm,
  select: selectDevice,
  call: watch,
  hangup: () => {
    leaveRingCall();
    hangup();
  },
  talk: (event) => liveCall()?.talkInput(event) ?? false,
  mute,
  openPaired,
  forget,
  showStats,
  answer,
  dismiss: dismissRing,
  openRing: reopenRing,
});

view.watchGlass((stamp, shownAt) => viewer.glass.add(shownAt, glassToGlassMs(stamp, shownAt)));

/** Wall-clock ms since the epoch on the clock the glass samples are timed with. */
function wallNow() {
  return performance.timeOrigin + performance.now();
}

/** `localStorage`, or storage that keeps nothing where the browser refuses it (paired.js and the others then keep their lists in memory). */
function browserStorage() {
  try {
    return window.localStorage;
  } catch {
    return { getItem: () => null, setItem() {} };
  }
}

/** Shows or hides the stats overlay, and remembers the choice. */
function showStats(shown) {
  try {
    storage.setItem(STATS_HIDDEN_KEY, shown ? "0" : "1");
  } catch (e) {
    console.warn("peercam: the stats choice could not be saved", e);
  }
  view.setStatsShown(shown);
}

/** Whether the user hid the stats overlay on an earlier visit. */
function statsHidden() {
  try {
    return storage.getItem(STATS_HIDDEN_KEY) === "1";
  } catch {
    return false;
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
    label: stateLabel(state),
    canCall: CALLABLE_STATES.includes(state) && !!device && !!viewer.broker?.connected,
    canHangup: CALLING_STATES.includes(state),
  });
  renderAudio();
  renderSituation();
}

/** The name the page gives device `id`: its own, the one it had when paired, else its id. */
function deviceName(id) {
  return viewer.broker?.devices.get(id)?.name || paired.find(viewer.link?.prefix, id)?.label || id;
}

/** Tells the person what is going on and what to do (situation.js). */
function renderSituation() {
  const id = viewer.selected;
  const device = id ? viewer.broker?.devices.get(id) : null;
  const name = id ? deviceName(id) : null;
  viewer.situation = situation({
    network: viewer.network,
    link: !!viewer.link,
    broker: viewer.brokerState,
    brokerUrl: viewer.link?.broker ?? "",
    error: viewer.error,
    state: viewer.state,
    device: id ? { name, known: !!device, online: !!device?.online } : null,
    offline: id ? offlineText(name, presence.get(viewer.link?.prefix, id), new Date()) : "",
  });
  view.renderSituation(viewer.situation);
}

/** An error (or, without `code`, a note): said on the picture, unless the situation line already says it. */
function showError(code, message) {
  viewer.error = { code, message };
  if (SITUATION_ERRORS.includes(code)) view.hideError();
  else view.showError(message, !code);
  renderSituation();
}

function clearError() {
  viewer.error = null;
  view.hideError();
  renderSituation();
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
  viewer.brokerState = "connecting";
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

/**
 * What the page does when the broker link reports; a call in progress
 * outlives broker trouble. A link that was up and dropped is reconnecting;
 * one never reached is down.
 */
function brokerHandlers(link) {
  const inCall = () => CALLING_STATES.includes(viewer.state);
  const lost = () => (["up", "reconnecting"].includes(viewer.brokerState) ? "reconnecting" : "down");
  return {
    ready() {
      viewer.brokerState = "up";
      if (viewer.error?.code === "broker") clearError();
      if (viewer.state === "connecting-broker" || (viewer.state === "error" && !viewer.error)) setState("ready");
      else setState(viewer.state);
    },
    refused(err) {
      viewer.brokerState = "down";
      fail("broker", err.message);
    },
    error(err) {
      viewer.brokerState = lost();
      if (!inCall()) fail("broker", `Cannot connect to the broker at ${link.broker}: ${err.message}`);
      else renderSituation();
    },
    offline() {
      viewer.brokerState = lost();
      if (!inCall() && !viewer.error) fail("broker", `Cannot reach the broker at ${link.broker}; retrying. Check the address and that it has a WebSocket listener.`);
      else renderSituation();
    },
    reconnecting() {
      viewer.brokerState = lost();
      renderSituation();
    },
    devices() {
      const now = Date.now();
      for (const device of devices()) presence.update(link.prefix, device.id, device.online, now);
      renderDevices();
      maybeAutoCall();
    },
    event(id, event) {
      if (event.type === "ring") onRing(id, event);
    },
  };
}

/** The broker's cameras; listed while there is a broker, unless every one is among the paired doorbells, which list them already. */
function renderDevices() {
  const prefix = viewer.link?.prefix;
  const listed = devices().sort((a, b) => a.id.localeCompare(b.id)).map((device) => ({ ...device, paired: !!paired.find(prefix, device.id) }));
  const pairedOnly = paired.list().length > 0 && listed.every((device) => device.paired);
  view.renderDevices(listed, viewer.selected, !!viewer.link && !pairedOnly);
  renderPaired();
  setState(viewer.state);
}

/**
 * The paired doorbells with their names and, on the broker the page is
 * connected to, whether they are online; the one on screen marked, and
 * whether it can be forgotten.
 */
function renderPaired() {
  const prefix = viewer.link?.prefix;
  view.renderPaired(
    paired.list().map((entry) => {
      const here = viewer.link && entry.broker === viewer.link.broker && entry.prefix === prefix;
      const device = here ? viewer.broker?.devices.get(entry.device) : null;
      const state = device ? (device.online ? "online" : "offline") : null;
      return {
        prefix: entry.prefix,
        device: entry.device,
        label: pairedLine({ ...entry, label: entry.label ?? device?.name ?? null }, state),
        presence: state,
        current: entry.prefix === prefix && entry.device === viewer.selected,
      };
    }),
    !!paired.find(prefix, viewer.selected),
  );
}

/** The recent rings, newest first. */
function renderRings() {
  view.renderRings(ringLog.list().map(ringLine));
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
  viewer.firstFrameAt = null;
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
      if (track.kind === "video") {
        view.onFirstFrame(() => {
          current().firstFrameShown();
          viewer.firstFrameAt ??= wallNow();
        });
      }
    }),
    floor: live(renderAudio),
    ring: live((event) => onRing(current().device.id, event)),
    stats: live(() => view.renderStats(describeStatsLine(current().stats, viewer.glass.median(wallNow())))),
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

/** The talk and mute controls; a buzz when the floor becomes ours, and when we let it go. */
function renderAudio() {
  const call = liveCall();
  const holding = !!call?.floor.holding;
  if (holding !== viewer.wasHolding) view.buzz(holding ? "talking" : "stopped");
  viewer.wasHolding = holding;
  view.renderAudio({
    talkable: !!call && viewer.state === "connected" && call.canTalk(),
    want: !!call?.floor.want,
    holding,
    holder: holderText(call?.floor),
    talkText: talkButtonText(call?.floor),
    sound: !!call?.remoteAudio,
    soundBlocked: viewer.soundBlocked,
    note: viewer.audioNote,
  });
}

// ---- rings: the call screen ----

/**
 * Device `id` rang (an `event` from P/D/event or from inside a call; the
 * same ring heard both ways counts once): it is listed, the call screen
 * opens, a notification goes out where allowed, and a page in no call
 * calls the doorbell, muted, so the picture is there at once.
 */
function onRing(id, event) {
  if (!viewer.link) return;
  const device = viewer.broker?.devices.get(id) ?? { id, name: deviceName(id) };
  const ring = ringFrom(viewer.link.prefix, device, event, Date.now());
  if (!ringLog.add(ring)) return;
  viewer.rings.push(event);
  renderRings();
  showCallScreen(ring);
  view.notifyRing({ tag: `peercam-ring-${id}`, title: ring.name, body: `Someone is at the door (${clock(new Date(ring.at))})` });
  view.buzz("ring");
  if (!liveCall()) callOnRing(id);
}

/** Calls device `id`, muted, for the call screen. */
function callOnRing(id) {
  if (viewer.selected !== id) selectDevice(id);
  viewer.ringCall = true;
  viewer.userMuted = true;
  startCall();
}

/** Opens (or updates) the call screen for `ring`: who and when. */
function showCallScreen(ring) {
  viewer.ringShown = ring;
  view.showCallScreen({ title: ring.name, text: `Someone is at the door · rang ${clock(new Date(ring.at))}` });
}

/**
 * Answer: the call screen closes onto the call, with the doorbell's sound
 * on and the talk control focused. A ring from another doorbell than the
 * one on screen switches to it; a call that is not running (nor about to
 * be placed by the link) is placed.
 */
function answer() {
  const ring = viewer.ringShown;
  viewer.ringShown = null;
  leaveRingCall();
  view.closeCallScreen({ toTalk: true });
  const switching = ring && ring.device !== viewer.selected && viewer.link?.prefix === ring.prefix;
  if (switching) selectDevice(ring.device);
  viewer.userMuted = false;
  if (switching || (!liveCall() && !viewer.link?.auto)) startCall();
  else mute(false);
}

/** Dismiss: the call screen closes; a call the ring placed ends. */
function dismissRing() {
  viewer.ringShown = null;
  view.closeCallScreen();
  if (!leaveRingCall()) return;
  if (liveCall()) hangup();
}

/** The user took over from the ring: its call is no longer a ring's, nor muted for it. Whether there was one. */
function leaveRingCall() {
  if (!viewer.ringCall) return false;
  viewer.ringCall = false;
  viewer.userMuted = false;
  return true;
}

/** Watch: the user's own call, with sound. */
function watch() {
  leaveRingCall();
  startCall();
}

/** A ring notification was clicked: the call screen again, for the latest ring. */
function reopenRing() {
  const ring = ringLog.list()[0];
  if (!ring || viewer.ringShown) return;
  showCallScreen(ring);
  if (!liveCall() && viewer.link?.prefix === ring.prefix) callOnRing(ring.device);
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
  if (location.hash === RING_MARKER) {
    history.replaceState(null, "", location.pathname + location.search);
    return null;
  }
  const link = parseLink(location.hash);
  const stripped = withoutSecrets(location.hash);
  if (stripped !== null) history.replaceState(null, "", stripped || location.pathname + location.search);
  return link;
}

/**
 * Opens what the address says: a pairing link's key is checked and the
 * doorbell kept (a damaged link is refused with what to do); a bare page
 * opens the doorbell used last, and a page opened with RING_MARKER opens
 * it on the call screen, muted. "Connect manually" is open only when
 * there is neither a link nor a paired doorbell.
 */
async function openAddress() {
  const opening = ++viewer.opening;
  const ringing = location.hash === RING_MARKER;
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
  const opened = link ?? (last && linkFromPairing(last));
  view.setManualOpen(!opened);
  start(opened);
  if (ringing && opened && !opened.problem) answerMarker(opened);
}

/** The page was opened to answer a ring: the call screen, with the latest ring of this doorbell when it is kept, and a muted call. */
function answerMarker(link) {
  const kept = ringLog.list().find((ring) => ring.prefix === link.prefix && ring.device === link.device);
  viewer.ringCall = true;
  viewer.userMuted = true;
  viewer.ringShown = kept ?? null;
  view.showCallScreen({
    title: kept?.name ?? deviceName(link.device),
    text: kept ? `Someone is at the door · rang ${clock(new Date(kept.at))}` : "Someone is at the door",
  });
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
  viewer.brokerState = "none";
  viewer.link = link;
  view.setStageShown(!!link);
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
window.addEventListener("offline", () => {
  viewer.network = false;
  renderSituation();
});
// Back on a network (maybe another one): the broker link reconnects by itself; until it has, say so.
window.addEventListener("online", () => {
  viewer.network = true;
  if (viewer.broker && !viewer.broker.connected) viewer.brokerState = "reconnecting";
  renderSituation();
});

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
  /** Whether the call screen is open, and the ring it shows. */
  get callScreen() { return view.ringVisible; },
  get ringShown() { return viewer.ringShown ? { ...viewer.ringShown } : null; },
  /** The rings this browser keeps (rings.js), newest first. */
  get ringLog() { return ringLog.list(); },
  /** Wall-clock ms at which the current call showed its first frame, or null. */
  get firstFrameAt() { return viewer.firstFrameAt; },
  /** What the situation line says: `{ kind, title, advice }` (situation.js), or null. */
  get situation() { return viewer.situation ? { ...viewer.situation } : null; },
  /** How far the page reaches past the window's right edge (px; 0 or less: no sideways scrolling). */
  get bodyOverflow() { return view.overflowPx; },
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
  answer,
  dismissRing,
};

view.setStatsShown(!statsHidden());
renderRings();
openAddress();
