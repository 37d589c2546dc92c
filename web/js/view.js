// The page: every DOM access of the viewer. It renders what app.js tells
// it and turns the user's clicks and keys into `actions`.

import { blockSide, readStamp } from "./glass.js";

/** How long a doorbell alert stays up (a new ring restarts it). */
const RING_SHOW_MS = 30000;

/** At most one glass stamp read this often: a few a second keep the CPU low. */
const GLASS_EVERY_MS = 250;

const OPTION_ID_PREFIX = "device-";

/**
 * A device's line in the list: name, id, and how many viewers it serves or
 * that it is offline; whether it is sealed, and whether this browser is
 * paired with it (`device.paired`).
 */
export function deviceLabel(device) {
  const label = device.name ? `${device.name} (${device.id})` : device.id;
  const paired = device.paired ? " · paired" : "";
  return device.online
    ? `${label} · ${device.viewers ?? 0}/${device.max_viewers ?? "?"} viewers${device.sealed ? " · sealed" : ""}${paired}`
    : `${label} · offline${paired}`;
}

/** `HH:MM:SS` in local time. */
export function clock(date) {
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/**
 * Binds the page in `doc`. `actions` are what the user can do:
 * `connect()` (the broker form was submitted), `select(deviceId)`,
 * `call()`, `hangup()`, `talk(floorEvent)`, `mute(muted)`,
 * `openPaired(prefix, deviceId)` and `forget()` (the doorbell on screen,
 * once the user confirmed).
 */
export function createView(doc, actions) {
  const $ = (id) => doc.getElementById(id);
  const ui = {
    state: $("state"),
    error: $("error"),
    stats: $("stats"),
    video: $("video"),
    form: $("broker-form"),
    broker: $("broker"),
    prefix: $("prefix"),
    user: $("user"),
    pass: $("pass"),
    devices: $("devices"),
    devicesEmpty: $("devices-empty"),
    call: $("call"),
    hangup: $("hangup"),
    talk: $("talk"),
    talkHolder: $("talk-holder"),
    mute: $("mute"),
    unmute: $("unmute"),
    audioNote: $("audio-note"),
    ring: $("ring"),
    ringText: $("ring-text"),
    ringDismiss: $("ring-dismiss"),
    notify: $("notify"),
    paired: $("paired"),
    pairedList: $("paired-list"),
    forget: $("forget"),
  };
  const win = doc.defaultView;
  let ringTimer = null;

  // ---- the device list: a listbox whose selection follows the keyboard focus ----

  const options = () => [...ui.devices.querySelectorAll("[role=option]")];
  const activeOption = () => ui.devices.querySelector("[role=option].active");

  function renderDevices(devices, selectedId) {
    const existing = new Map(options().map((li) => [li.dataset.id, li]));
    const items = devices.map((device) => {
      const li = existing.get(device.id) ?? newOption(device.id);
      const selected = device.id === selectedId;
      li.textContent = deviceLabel(device);
      li.classList.toggle("offline", !device.online);
      li.classList.toggle("selected", selected);
      li.setAttribute("aria-selected", String(selected));
      return li;
    });
    ui.devices.replaceChildren(...items);
    ui.devices.hidden = items.length === 0;
    ui.devicesEmpty.hidden = items.length > 0;
    markActive(items.find((li) => li.dataset.id === selectedId) ?? items[0]);
  }

  function newOption(id) {
    const li = doc.createElement("li");
    li.id = OPTION_ID_PREFIX + id;
    li.dataset.id = id;
    li.setAttribute("role", "option");
    li.addEventListener("click", () => actions.select(id));
    return li;
  }

  /** The option the keyboard is on, announced through `aria-activedescendant`. */
  function markActive(option) {
    for (const li of options()) li.classList.toggle("active", li === option);
    if (option) ui.devices.setAttribute("aria-activedescendant", option.id);
    else ui.devices.removeAttribute("aria-activedescendant");
  }

  ui.devices.addEventListener("keydown", (event) => {
    const all = options();
    const at = all.indexOf(activeOption());
    const target = {
      ArrowDown: all[Math.min(at + 1, all.length - 1)],
      ArrowUp: all[Math.max(at - 1, 0)],
      Home: all[0],
      End: all.at(-1),
      " ": all[at],
      Enter: all[at],
    }[event.key];
    if (!target) return;
    event.preventDefault();
    actions.select(target.dataset.id);
  });

  // ---- paired doorbells ----

  /** The paired doorbells (`{ prefix, device, label, current }`), and the forget button when the one on screen is paired. */
  function renderPaired(entries, canForget) {
    ui.pairedList.replaceChildren(...entries.map((entry) => {
      const li = doc.createElement("li");
      const button = doc.createElement("button");
      button.type = "button";
      button.textContent = entry.label;
      if (entry.current) button.setAttribute("aria-current", "true");
      button.addEventListener("click", () => actions.openPaired(entry.prefix, entry.device));
      li.append(button);
      return li;
    }));
    ui.paired.hidden = entries.length === 0;
    ui.forget.hidden = !canForget;
  }

  ui.forget.addEventListener("click", () => {
    if (win.confirm("Forget this doorbell? This browser loses its key, and watching it again needs a new link from `peercam pair`.")) actions.forget();
  });

  // ---- state, errors, the form ----

  function renderState(state, { canCall, canHangup }) {
    ui.state.textContent = state;
    ui.state.dataset.state = state;
    ui.call.disabled = !canCall;
    ui.hangup.disabled = !canHangup;
  }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = false;
  }

  function hideError() {
    ui.error.hidden = true;
  }

  /** The broker form's values (the password too: it is only ever used to connect). */
  function formValues() {
    return { broker: ui.broker.value.trim(), prefix: ui.prefix.value.trim(), username: ui.user.value, password: ui.pass.value };
  }

  /** Fills the broker form; fields absent from `values` keep what they hold. */
  function fillForm(values) {
    const fields = { broker: ui.broker, prefix: ui.prefix, username: ui.user, password: ui.pass };
    for (const [name, input] of Object.entries(fields)) if (name in values) input.value = values[name] ?? "";
  }

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    actions.connect();
  });
  ui.call.addEventListener("click", () => actions.call());
  ui.hangup.addEventListener("click", () => actions.hangup());

  // ---- video and audio ----

  /** Adds a remote track to the video element's stream. */
  function attachTrack(track, streams) {
    const stream = ui.video.srcObject instanceof win.MediaStream ? ui.video.srcObject : new win.MediaStream();
    const source = streams[0] ?? new win.MediaStream([track]);
    source.getTracks().forEach((t) => stream.getTrackById(t.id) || stream.addTrack(t));
    ui.video.srcObject = stream;
  }

  function detachMedia() {
    ui.video.srcObject = null;
  }

  /** Calls `shown()` once the video element presents its first frame. */
  function onFirstFrame(shown) {
    if (ui.video.requestVideoFrameCallback) ui.video.requestVideoFrameCallback(() => shown());
    else ui.video.addEventListener("loadeddata", () => shown(), { once: true });
  }

  /**
   * Plays the video, with sound if `withSound`; null when there is nothing
   * to play. Resolves with "sound", "muted", "blocked" (autoplay forbade
   * sound, so it plays muted) or "failed".
   */
  function playVideo(withSound) {
    const video = ui.video;
    if (!video.srcObject) return null;
    video.muted = !withSound;
    return video.play().then(
      () => (withSound ? "sound" : "muted"),
      async (e) => {
        if (e.name !== "NotAllowedError" || video.muted) return "failed";
        video.muted = true;
        await video.play().catch(() => {});
        return "blocked";
      },
    );
  }

  /** The talk button, the mute buttons and the audio lines. */
  function renderAudio({ talkable, want, holding, holder, sound, soundBlocked, note }) {
    ui.talk.disabled = !talkable;
    ui.talk.setAttribute("aria-pressed", String(want));
    ui.talk.classList.toggle("live", holding);
    ui.talkHolder.textContent = holder;
    ui.mute.disabled = !sound;
    ui.mute.textContent = sound && ui.video.muted ? "Unmute" : "Mute";
    ui.unmute.hidden = !(sound && soundBlocked && ui.video.muted);
    ui.audioNote.textContent = note ?? "";
    ui.audioNote.hidden = !note;
  }

  // ---- the glass stamp (glass.js): read off presented frames ----

  const glassCanvas = doc.createElement("canvas");
  let glassContext = null;

  /**
   * The stamp of the frame on screen, or null (no frame, no stamp). Draws
   * only the top strip, a block high, at the frame's native size (source
   * rect in video pixels, no scaling) into a small canvas kept for reuse.
   */
  function readGlassStamp() {
    const { videoWidth: width, videoHeight: height } = ui.video;
    if (!width || !height) return null;
    const rows = Math.min(blockSide(width), height);
    if (glassCanvas.width !== width || glassCanvas.height !== rows) {
      glassCanvas.width = width;
      glassCanvas.height = rows;
    }
    glassContext ??= glassCanvas.getContext("2d", { willReadFrequently: true });
    glassContext.drawImage(ui.video, 0, 0, width, rows, 0, 0, width, rows);
    return readStamp(glassContext.getImageData(0, 0, width, rows).data, width, rows);
  }

  /**
   * For the page's life, calls `sampled(stamp, shownAt)` at most every
   * GLASS_EVERY_MS with a presented frame's stamp (null without one) and
   * the wall-clock time it is shown (ms since the epoch). With
   * requestVideoFrameCallback that is the frame's expected display time,
   * on the performance.now() clock, moved to the wall clock by
   * performance.timeOrigin. Without it, the frame on screen is read on a
   * timer and timed at the read, which counts up to a frame interval more.
   */
  function watchGlass(sampled) {
    const video = ui.video;
    const clock = win.performance;
    if (!video.requestVideoFrameCallback) {
      setInterval(() => sampled(readGlassStamp(), clock.timeOrigin + clock.now()), GLASS_EVERY_MS);
      return;
    }
    const onFrame = (_, frame) => {
      sampled(readGlassStamp(), clock.timeOrigin + frame.expectedDisplayTime);
      setTimeout(() => video.requestVideoFrameCallback(onFrame), GLASS_EVERY_MS);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  function renderStats(text) {
    ui.stats.textContent = text;
    ui.stats.hidden = false;
  }

  // Push-to-talk: see floor.js for what a short and a long press do.
  // Keyboard and assistive-technology clicks (detail 0) toggle.
  ui.talk.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || ui.talk.disabled) return;
    actions.talk({ type: "press", now: win.performance.now() });
  });
  for (const type of ["pointerup", "pointerleave", "pointercancel"]) {
    ui.talk.addEventListener(type, () => actions.talk({ type: "release", now: win.performance.now(), onButton: type === "pointerup" }));
  }
  ui.talk.addEventListener("click", (event) => {
    if (event.detail === 0 && !ui.talk.disabled) actions.talk({ type: "toggle" });
  });
  ui.talk.addEventListener("keydown", (event) => {
    if (event.repeat && (event.key === " " || event.key === "Enter")) event.preventDefault();
  });
  ui.talk.addEventListener("contextmenu", (event) => event.preventDefault());
  ui.mute.addEventListener("click", () => actions.mute(!ui.video.muted));
  ui.unmute.addEventListener("click", () => actions.mute(false));

  // ---- doorbell ----

  /** Shows the ring alert for RING_SHOW_MS, and notifies where the user allowed it. */
  function showRing(event, device) {
    const at = new Date(event.at);
    const when = clock(Number.isNaN(at.getTime()) ? new Date() : at);
    ui.ringText.textContent = `🔔 Someone is at the door (${when})`;
    ui.ring.hidden = false;
    clearTimeout(ringTimer);
    ringTimer = setTimeout(dismissRing, RING_SHOW_MS);
    if (!("Notification" in win) || win.Notification.permission !== "granted") return;
    try {
      new win.Notification(device.name || device.id, { body: `Someone is at the door (${when})`, tag: `peercam-ring-${device.id}`, renotify: true });
    } catch (e) {
      // Chrome on Android only notifies through a service worker; the alert on the page still shows.
      console.warn("peercam: notification", e);
    }
  }

  function dismissRing() {
    clearTimeout(ringTimer);
    ui.ring.hidden = true;
  }

  /** The notification button shows only while the browser can still ask. */
  function renderNotify() {
    ui.notify.hidden = !("Notification" in win && win.Notification.permission === "default");
  }

  ui.ringDismiss.addEventListener("click", dismissRing);
  ui.notify.addEventListener("click", () => win.Notification.requestPermission().then(renderNotify, renderNotify));
  renderNotify();

  return {
    renderState,
    showError,
    hideError,
    renderDevices,
    renderPaired,
    formValues,
    fillForm,
    attachTrack,
    detachMedia,
    onFirstFrame,
    playVideo,
    renderAudio,
    renderStats,
    watchGlass,
    showRing,
    get videoMuted() { return ui.video.muted; },
    get ringVisible() { return !ui.ring.hidden; },
  };
}
