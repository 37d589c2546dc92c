// peercam web viewer: finds devices through their retained MQTT status,
// calls one over WebRTC with signaling per PROTOCOL.md (plain mode), and
// shows the video with live statistics, plays the device's audio, talks
// back on the floor the device grants, and alerts on doorbell rings. No
// build step: this entry module and js/ are served as they are.
//
// This module holds the page's state and wires the parts together:
// js/broker.js (the MQTT link and device list), js/call.js (one call),
// js/floor.js (talk floor), js/stats.js, js/link.js (pairing links),
// js/mic.js, and js/view.js (the DOM).

import { BrokerLink } from "./js/broker.js";
import { Call } from "./js/call.js";
import { floorSnapshot, holderText } from "./js/floor.js";
import { linkFragment, parseLink, withoutPassword } from "./js/link.js";
import { openMic } from "./js/mic.js";
import { describeStats, emptyStats } from "./js/stats.js";
import { createView } from "./js/view.js";

/** The broker a page opened without a link suggests: the daemon's host, Mosquitto's usual WebSocket port. */
const DEFAULT_BROKER_PORT = 8083;
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
};

const view = createView(document, {
  connect: connectFromForm,
  select: selectDevice,
  call: startCall,
  hangup,
  talk: (event) => liveCall()?.talkInput(event) ?? false,
  mute,
});

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
  view.renderDevices(devices().sort((a, b) => a.id.localeCompare(b.id)), viewer.selected);
  setState(viewer.state);
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

function startCall() {
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
  if (device.sealed) {
    fail("unsupported", `${device.name || id} uses sealed signaling, which this viewer does not support yet.`);
    return;
  }
  viewer.call?.close();
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
  });
  viewer.call = call;
  call.start();
}

/** What the page does when a call reports; `current()` is the call, and only the page's current call has a say. */
function callHooks(current) {
  const live = (fn) => (...args) => {
    if (viewer.call === current()) fn(...args);
  };
  return {
    state: live(setState),
    ended: live(({ code, message, note }) => {
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
    stats: live(() => view.renderStats(describeStats(current().stats))),
  };
}

function hangup() {
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

/** The link in the address, with its password taken out of the address (and so out of history). */
function linkFromAddress() {
  const link = parseLink(location.hash);
  const stripped = withoutPassword(location.hash);
  if (stripped !== null) history.replaceState(null, "", stripped || location.pathname + location.search);
  return link;
}

function start(link) {
  viewer.call?.close();
  viewer.call = null;
  viewer.broker?.end();
  viewer.broker = null;
  viewer.link = link;
  renderDevices();
  if (!link) {
    view.fillForm({ broker: `ws://${location.hostname || "127.0.0.1"}:${DEFAULT_BROKER_PORT}` });
    clearError();
    setState("idle");
    return;
  }
  if (link.problem) {
    fail("unsupported", link.problem);
    return;
  }
  view.fillForm({ broker: link.broker, prefix: link.prefix, username: link.username, password: link.password });
  viewer.selected = link.device;
  if (link.key) {
    fail("unsupported", "This is a sealed-mode pairing link; this viewer does not support sealed signaling yet.");
    return;
  }
  connectBroker(link);
}

window.addEventListener("hashchange", () => start(linkFromAddress()));
window.addEventListener("pagehide", () => viewer.call?.end(null, null, "page closed"));

window.peercamViewer = {
  get state() { return viewer.state; },
  get error() { return viewer.error; },
  get devices() { return devices(); },
  get sessionId() { return viewer.call?.sessionId ?? null; },
  get stats() { return viewer.call ? { ...viewer.call.stats } : emptyStats(); },
  get talk() { return floorSnapshot(viewer.call?.floor); },
  get rings() { return viewer.rings.map((r) => ({ ...r })); },
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
};

start(linkFromAddress());
