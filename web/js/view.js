// The page: every DOM access of the viewer. It renders what app.js tells
// it and turns the user's clicks, taps and keys into `actions`. Laid out
// phone first: the picture full width, the call controls in a bar at the
// bottom, a ring as a full-screen call screen (a modal dialog the live
// picture moves into).

import { blockSide, readStamp } from "./glass.js";

/** How long the call screen waits for Answer before it closes as if dismissed: about as long as a visitor waits at a door. */
const RING_SHOW_MS = 60000;

/** Vibration patterns (ms on, off, on…): a ring's double buzz, a short tick when the floor is ours, a shorter one when it is let go. */
const BUZZ = { ring: [300, 150, 300], talking: [40], stopped: [15] };

/** A tap on the picture goes full screen where the screen is a phone held sideways. */
const LANDSCAPE_TOUCH = "(orientation: landscape) and (pointer: coarse)";

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

/**
 * Binds the page in `doc`. `actions` are what the user can do:
 * `connect()` (the broker form was submitted), `select(deviceId)`,
 * `call()`, `hangup()`, `talk(floorEvent)`, `mute(muted)`,
 * `openPaired(prefix, deviceId)`, `forget()` (the doorbell on screen,
 * once the user confirmed), `showStats(shown)`, and on the call screen
 * `answer()`, `dismiss()` and `openRing()` (a ring notification was
 * clicked).
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
    ringTitle: $("ring-title"),
    ringText: $("ring-text"),
    ringStage: $("ring-stage"),
    ringDismiss: $("ring-dismiss"),
    answer: $("answer"),
    notify: $("notify"),
    paired: $("paired"),
    pairedList: $("paired-list"),
    forget: $("forget"),
    cameras: $("cameras"),
    rings: $("rings"),
    ringList: $("ring-list"),
    manual: $("manual"),
    situation: $("situation"),
    situationTitle: $("situation-title"),
    situationAdvice: $("situation-advice"),
    stage: $("stage"),
    statsToggle: $("stats-toggle"),
    fullscreen: $("fullscreen"),
  };
  const win = doc.defaultView;
  let ringTimer = null;
  let statsShown = true;

  // ---- the device list: a listbox whose selection follows the keyboard focus ----

  const options = () => [...ui.devices.querySelectorAll("[role=option]")];
  const activeOption = () => ui.devices.querySelector("[role=option].active");

  /** The cameras the broker lists; the list shows unless `shown` is false (every one is already among the paired doorbells). */
  function renderDevices(devices, selectedId, shown = true) {
    ui.cameras.hidden = !shown;
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

  /**
   * The paired doorbells (`{ prefix, device, label, presence, current }`,
   * `presence` one of "online", "offline" or null when unknown), and the
   * forget button when the one on screen is paired.
   */
  function renderPaired(entries, canForget) {
    ui.pairedList.replaceChildren(...entries.map((entry) => {
      const li = doc.createElement("li");
      const button = doc.createElement("button");
      button.type = "button";
      button.textContent = entry.label;
      if (entry.presence) button.dataset.presence = entry.presence;
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

  /** The state badge (`label`), and Watch or, in a call, Hang up. */
  function renderState(state, { label, canCall, canHangup }) {
    ui.state.textContent = label;
    ui.state.dataset.state = state;
    ui.call.disabled = !canCall;
    ui.hangup.disabled = !canHangup;
    const swap = ui.call.hidden !== canHangup;
    const focused = doc.activeElement;
    ui.call.hidden = canHangup;
    ui.hangup.hidden = !canHangup;
    if (swap && (focused === ui.call || focused === ui.hangup)) (canHangup ? ui.hangup : ui.call).focus();
  }

  /** The line under the header: what is going on and what to do (situation.js), or nothing. */
  function renderSituation(situation) {
    ui.situation.hidden = !situation;
    ui.situation.dataset.kind = situation?.kind ?? "";
    ui.situationTitle.textContent = situation?.title ?? "";
    ui.situationAdvice.textContent = situation?.advice ?? "";
  }

  /** Shows the picture, or hides it while there is nothing to show it from (no doorbell, no broker: the form comes first). */
  function setStageShown(shown) {
    ui.stage.hidden = !shown;
  }

  /** Opens or closes the "Connect manually" disclosure. */
  function setManualOpen(open) {
    ui.manual.open = open;
  }

  /** The recent rings, newest first, as their lines (rings.js `ringLine`). */
  function renderRings(lines) {
    ui.ringList.replaceChildren(...lines.map((line) => {
      const li = doc.createElement("li");
      li.textContent = line;
      return li;
    }));
    ui.rings.hidden = lines.length === 0;
  }

  /** Says `message` on the picture: in red, or plainly for a `note` (a call that ended normally). */
  function showError(message, note = false) {
    ui.error.textContent = message;
    ui.error.classList.toggle("note", note);
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

  /** The talk button (`talkText` on it), the mute buttons and the audio lines. */
  function renderAudio({ talkable, want, holding, holder, talkText, sound, soundBlocked, note }) {
    ui.talk.disabled = !talkable;
    ui.talk.setAttribute("aria-pressed", String(want));
    ui.talk.classList.toggle("live", holding);
    ui.talk.textContent = talkText;
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
    ui.stats.hidden = !statsShown;
  }

  /** Shows or hides the stats overlay; its toggle says which. */
  function setStatsShown(shown) {
    statsShown = shown;
    ui.statsToggle.setAttribute("aria-pressed", String(shown));
    ui.stats.hidden = !shown || ui.stats.textContent === "";
  }

  ui.statsToggle.addEventListener("click", () => actions.showStats(!statsShown));

  // ---- full screen: the stage, from its button or a tap on a phone held sideways ----

  function toggleFullscreen() {
    if (doc.fullscreenElement) doc.exitFullscreen().catch(() => {});
    else ui.stage.requestFullscreen?.().catch((e) => console.warn("peercam: full screen", e));
  }

  function renderFullscreen() {
    const on = doc.fullscreenElement === ui.stage;
    ui.fullscreen.textContent = on ? "Exit full screen" : "Full screen";
    ui.fullscreen.hidden = !doc.fullscreenEnabled;
  }

  ui.fullscreen.addEventListener("click", toggleFullscreen);
  ui.video.addEventListener("click", () => {
    if (win.matchMedia(LANDSCAPE_TOUCH).matches) toggleFullscreen();
  });
  doc.addEventListener("fullscreenchange", renderFullscreen);
  renderFullscreen();

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

  // ---- the call screen: a modal dialog the live picture moves into ----

  const stageHome = { parent: ui.stage.parentNode, next: ui.stage.nextSibling };
  let focusBefore = null;

  /**
   * Opens the call screen, or updates it when open: who rang (`title`)
   * and when (`text`), the live picture, Answer and Dismiss. The focus
   * moves to Answer; it closes by itself after RING_SHOW_MS, as dismissed.
   */
  function showCallScreen({ title, text }) {
    ui.ringTitle.textContent = title;
    ui.ringText.textContent = text;
    clearTimeout(ringTimer);
    ringTimer = setTimeout(() => actions.dismiss(), RING_SHOW_MS);
    if (ui.ring.open) return;
    focusBefore = ui.ring.contains(doc.activeElement) ? null : doc.activeElement;
    ui.ringStage.append(ui.stage);
    resumeVideo();
    ui.ring.showModal();
    ui.answer.focus();
  }

  /** Closes the call screen: the picture goes back, and the focus to the talk control (`toTalk`, after Answer) or where it was. */
  function closeCallScreen({ toTalk = false } = {}) {
    clearTimeout(ringTimer);
    if (!ui.ring.open) return;
    ui.ring.close();
    stageHome.parent.insertBefore(ui.stage, stageHome.next);
    resumeVideo();
    const target = toTalk ? (ui.talk.disabled ? ui.mute : ui.talk) : focusBefore;
    if (target?.isConnected && !target.disabled) target.focus();
    focusBefore = null;
  }

  /** Plays on a video element that moving across the page paused. */
  function resumeVideo() {
    if (ui.video.srcObject && ui.video.paused) ui.video.play().catch(() => {});
  }

  ui.answer.addEventListener("click", () => actions.answer());
  ui.ringDismiss.addEventListener("click", () => actions.dismiss());
  // Escape on a modal dialog: dismissed, through the page, not closed behind its back.
  ui.ring.addEventListener("cancel", (event) => {
    event.preventDefault();
    actions.dismiss();
  });

  /** A notification of `title`'s ring saying `body`, where the user allowed them; a click on it brings the page and its call screen up. */
  function notifyRing({ tag, title, body }) {
    if (!("Notification" in win) || win.Notification.permission !== "granted") return;
    try {
      const notification = new win.Notification(title, { body, tag, renotify: true });
      notification.addEventListener("click", () => {
        win.focus();
        notification.close();
        actions.openRing();
      });
    } catch (e) {
      // Chrome on Android only notifies through a service worker; the call screen on the page still shows.
      console.warn("peercam: notification", e);
    }
  }

  /** Vibrates BUZZ[`what`] where the device can ("ring", "talking", "stopped"). */
  function buzz(what) {
    win.navigator.vibrate?.(BUZZ[what]);
  }

  /** The notification button shows only while the browser can still ask. */
  function renderNotify() {
    ui.notify.hidden = !("Notification" in win && win.Notification.permission === "default");
  }
  ui.notify.addEventListener("click", () => win.Notification.requestPermission().then(renderNotify, renderNotify));
  renderNotify();

  return {
    renderState,
    renderSituation,
    showError,
    hideError,
    renderDevices,
    renderPaired,
    renderRings,
    setManualOpen,
    setStageShown,
    formValues,
    fillForm,
    attachTrack,
    detachMedia,
    onFirstFrame,
    playVideo,
    renderAudio,
    renderStats,
    setStatsShown,
    watchGlass,
    showCallScreen,
    closeCallScreen,
    notifyRing,
    buzz,
    get videoMuted() { return ui.video.muted; },
    get ringVisible() { return ui.ring.open; },
    /** How far the page reaches past the window's right edge (px; 0 or less: no sideways scrolling). */
    get overflowPx() { return doc.documentElement.scrollWidth - win.innerWidth; },
  };
}
