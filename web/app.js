// peercam web viewer: finds devices through their retained MQTT status,
// calls one over WebRTC with signaling per PROTOCOL.md (plain mode), and
// shows the video with live statistics, plays the device's audio, talks
// back on the floor the device grants, and alerts on doorbell rings. No
// build step: served as is.
"use strict";

(() => {
  const PROTOCOL_VERSION = 1;
  const ICE_SERVERS_WAIT_MS = 2000;
  const CONNECT_TIMEOUT_MS = 25000;
  const STATS_INTERVAL_MS = 1000;
  const MIC_WAIT_MS = 10000;
  const TOGGLE_PRESS_MS = 300;
  const RING_SHOW_MS = 30000;

  const $ = (id) => document.getElementById(id);
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
  };

  /** Everything the page knows; `window.peercamViewer` exposes it read-only. */
  const viewer = {
    state: "idle",
    error: null,
    devices: new Map(),
    selected: null,
    link: null,
    client: null,
    call: null,
    userMuted: false,
    soundBlocked: false,
    audioNote: null,
    rings: [],
    ringTimer: null,
  };

  /** The talk button's current press: when it began, and whether it is still down. */
  const press = { active: false, at: 0 };

  // ---- pairing link (URL fragment) ----

  /** Reads `#v=1&b=…&p=…&d=…[&u=…&w=…][&k=…&n=…][&auto=0]`; null when absent. */
  function parseLink(hash) {
    const params = new URLSearchParams(hash.replace(/^#/, ""));
    if (!params.has("b")) return null;
    const v = params.get("v");
    if (v !== null && v !== String(PROTOCOL_VERSION)) {
      return { problem: `This link is for protocol version ${v}; this viewer speaks version ${PROTOCOL_VERSION}.` };
    }
    return {
      broker: params.get("b"),
      prefix: params.get("p") || "peercam",
      device: params.get("d"),
      username: params.get("u"),
      password: params.get("w"),
      key: params.get("k"),
      name: params.get("n"),
      auto: params.get("auto") !== "0",
    };
  }

  /** The fragment for the current form and selection, so the page can be bookmarked. */
  function linkFragment() {
    const params = new URLSearchParams({ v: String(PROTOCOL_VERSION), b: ui.broker.value.trim(), p: ui.prefix.value.trim() });
    if (viewer.selected) params.set("d", viewer.selected);
    if (ui.user.value) params.set("u", ui.user.value);
    if (ui.pass.value) params.set("w", ui.pass.value);
    return "#" + params.toString();
  }

  // ---- state and messages ----

  function setState(state) {
    viewer.state = state;
    ui.state.textContent = state;
    ui.state.dataset.state = state;
    const dev = viewer.selected && viewer.devices.get(viewer.selected);
    ui.call.disabled = !(state === "ready" || state === "ended" || state === "error") || !dev || !viewer.client?.connected;
    ui.hangup.disabled = !(state === "calling" || state === "connected");
    renderAudio();
  }

  function showError(code, message) {
    viewer.error = { code, message };
    ui.error.textContent = message;
    ui.error.hidden = false;
  }

  function clearError() {
    viewer.error = null;
    ui.error.hidden = true;
  }

  function fail(code, message) {
    showError(code, message);
    setState("error");
  }

  // ---- broker and device list ----

  function statusTopicFilter(prefix) {
    return `${prefix}/+/status`;
  }

  function connectBroker(link) {
    if (viewer.client) viewer.client.end(true);
    viewer.devices.clear();
    renderDevices();
    clearError();
    setState("connecting-broker");
    const prefix = link.prefix;
    let client;
    try {
      client = mqtt.connect(link.broker, {
        protocolVersion: 4,
        clean: true,
        reconnectPeriod: 2000,
        connectTimeout: 8000,
        username: link.username || undefined,
        password: link.password || undefined,
      });
    } catch (e) {
      fail("broker", `Cannot use broker address "${link.broker}": ${e.message}. Use ws://host:port or wss://host:port.`);
      return;
    }
    viewer.client = client;
    client.on("connect", () => {
      client.subscribe(statusTopicFilter(prefix), { qos: 1 }, (err) => {
        if (err) {
          fail("broker", `The broker refused the subscription to ${statusTopicFilter(prefix)}: ${err.message}`);
          return;
        }
        if (viewer.error?.code === "broker") clearError();
        if (viewer.state === "connecting-broker" || (viewer.state === "error" && !viewer.error)) setState("ready");
        else setState(viewer.state);
      });
    });
    client.on("error", (err) => {
      if (viewer.state === "calling" || viewer.state === "connected") return;
      fail("broker", `Cannot connect to the broker at ${link.broker}: ${err.message}`);
    });
    client.on("offline", () => {
      if (viewer.state === "calling" || viewer.state === "connected") return;
      if (!viewer.error) fail("broker", `Cannot reach the broker at ${link.broker}; retrying. Check the address and that it has a WebSocket listener.`);
    });
    client.on("message", (topic, payload) => onMessage(prefix, topic, payload));
  }

  function onMessage(prefix, topic, payload) {
    const call = viewer.call;
    if (call && topic === call.outTopic) {
      call.onSignal(payload);
      return;
    }
    if (!topic.startsWith(prefix + "/")) return;
    const m = topic.slice(prefix.length + 1).match(/^([A-Za-z0-9_-]{1,64})\/status$/);
    if (!m) return;
    const id = m[1];
    if (payload.length === 0) {
      viewer.devices.delete(id);
    } else {
      const status = parseJson(payload);
      if (!status || status.v !== PROTOCOL_VERSION) return;
      viewer.devices.set(id, { id, ...status, online: status.online === true });
    }
    renderDevices();
    maybeAutoCall();
  }

  function parseJson(payload) {
    try {
      const value = JSON.parse(new TextDecoder().decode(payload));
      return value && typeof value === "object" && !Array.isArray(value) ? value : null;
    } catch {
      return null;
    }
  }

  function renderDevices() {
    ui.devices.replaceChildren();
    if (viewer.devices.size === 0) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "none seen yet";
      ui.devices.append(li);
    }
    for (const dev of [...viewer.devices.values()].sort((a, b) => a.id.localeCompare(b.id))) {
      const li = document.createElement("li");
      li.dataset.id = dev.id;
      li.classList.toggle("offline", !dev.online);
      li.classList.toggle("selected", dev.id === viewer.selected);
      const label = dev.name ? `${dev.name} (${dev.id})` : dev.id;
      li.textContent = dev.online
        ? `${label} · ${dev.viewers ?? 0}/${dev.max_viewers ?? "?"} viewers${dev.sealed ? " · sealed" : ""}`
        : `${label} · offline`;
      li.addEventListener("click", () => selectDevice(dev.id));
      ui.devices.append(li);
    }
    setState(viewer.state);
  }

  function selectDevice(id) {
    viewer.selected = id;
    history.replaceState(null, "", linkFragment());
    renderDevices();
  }

  function maybeAutoCall() {
    const link = viewer.link;
    if (!link || !link.auto || !link.device || viewer.state !== "ready") return;
    const dev = viewer.devices.get(link.device);
    if (dev && dev.online) {
      link.auto = false;
      clearError();
      startCall();
    } else if (dev) {
      showError("offline", `${dev.name || dev.id} is offline: it is not connected to the broker. The call starts when it comes back.`);
    }
  }

  // ---- the call ----

  function randomSessionId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function startCall() {
    const client = viewer.client;
    const id = viewer.selected;
    const dev = id && viewer.devices.get(id);
    if (!client || !client.connected) {
      fail("broker", "Not connected to a broker.");
      return;
    }
    if (!dev) {
      fail("offline", `No device "${id ?? ""}" has announced itself under prefix ${viewer.link.prefix}.`);
      return;
    }
    if (!dev.online) {
      fail("offline", `${dev.name || id} is offline: it is not connected to the broker.`);
      return;
    }
    if (dev.sealed) {
      fail("unsupported", `${dev.name || id} uses sealed signaling, which this viewer does not support yet.`);
      return;
    }
    if (viewer.call) viewer.call.close("new call");
    clearError();
    setAudioNote(null);
    viewer.call = new Call(client, viewer.link.prefix, dev);
    viewer.call.start();
  }

  /** One WebRTC session with one device, signaled on `P/D/in/S` and `P/D/out/S`. */
  class Call {
    constructor(client, prefix, device) {
      this.client = client;
      this.device = device;
      this.sessionId = randomSessionId();
      this.inTopic = `${prefix}/${device.id}/in/${this.sessionId}`;
      this.outTopic = `${prefix}/${device.id}/out/${this.sessionId}`;
      this.pc = null;
      this.closed = false;
      this.lastPayload = { offer: null, answer: null, candidate: null };
      this.inbox = Promise.resolve();
      this.iceServersReply = null;
      this.offerPublished = false;
      this.pendingCandidates = [];
      this.offerAt = 0;
      this.stats = emptyStats();
      this.statsTimer = null;
      this.connectTimer = null;
      this.lastBytes = null;
      this.mic = null;
      this.audioDirection = null;
      this.audioTransceiver = null;
      this.remoteAudio = false;
      this.talk = { want: false, holding: false, holder: null, ownLabel: null, lastReply: null, events: [], outstanding: 0, unsupported: false };
    }

    async start() {
      setState("calling");
      try {
        await this.subscribe();
        const [iceServers, mic] = await Promise.all([this.askIceServers(), this.device.audio === "sendrecv" ? openMic() : null]);
        if (this.closed) {
          mic?.stop();
          return;
        }
        this.mic = mic;
        this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
        this.watchPeerConnection();
        this.pc.addTransceiver("video", { direction: "recvonly" });
        this.audioTransceiver = this.addAudio();
        await this.pc.setLocalDescription(await this.pc.createOffer());
        this.send({ type: "offer", sdp: this.pc.localDescription.sdp });
        this.offerAt = performance.now();
        this.offerPublished = true;
        this.pendingCandidates.splice(0).forEach((c) => this.send(c));
        this.connectTimer = setTimeout(() => {
          if (this.pc.connectionState !== "connected") {
            this.end("no-connectivity", "No network path to the device: WebRTC could not connect. If the device is behind NAT, configure a TURN server in its ice_servers.");
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

    subscribe() {
      return new Promise((resolve, reject) => {
        this.client.subscribe(this.outTopic, { qos: 1 }, (err, granted) => {
          if (err) reject(err);
          else if (granted?.some((g) => g.qos === 128)) reject(new Error(`the broker refused ${this.outTopic}`));
          else resolve();
        });
      });
    }

    /** Asks the device for ICE servers; falls back to the (credential-free) status list. */
    askIceServers() {
      const fallback = Array.isArray(this.device.ice_servers) ? this.device.ice_servers : [];
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(fallback), ICE_SERVERS_WAIT_MS);
        this.iceServersReply = (servers) => {
          clearTimeout(timer);
          resolve(Array.isArray(servers) ? servers : fallback);
        };
        this.send({ type: "ice-servers" });
      });
    }

    send(body) {
      if (this.closed && body.type !== "bye") return;
      this.client.publish(this.inTopic, JSON.stringify({ v: PROTOCOL_VERSION, ...body }), { qos: 1 });
    }

    watchPeerConnection() {
      const pc = this.pc;
      pc.onicecandidate = ({ candidate }) => {
        const body = candidate
          ? { type: "candidate", candidate: candidate.candidate, sdpMid: candidate.sdpMid, sdpMLineIndex: candidate.sdpMLineIndex, usernameFragment: candidate.usernameFragment }
          : { type: "candidate", candidate: "", sdpMid: pc.getTransceivers()[0]?.mid ?? "0", sdpMLineIndex: 0 };
        if (this.offerPublished) this.send(body);
        else this.pendingCandidates.push(body);
      };
      pc.ontrack = ({ track, streams }) => {
        const stream = ui.video.srcObject instanceof MediaStream ? ui.video.srcObject : new MediaStream();
        const source = streams[0] ?? new MediaStream([track]);
        source.getTracks().forEach((t) => stream.getTrackById(t.id) || stream.addTrack(t));
        ui.video.srcObject = stream;
        if (track.kind === "audio") this.remoteAudio = true;
        play();
        if (track.kind === "video") this.watchFirstFrame();
      };
      pc.onconnectionstatechange = () => {
        if (this.closed) return;
        switch (pc.connectionState) {
          case "connected":
            clearTimeout(this.connectTimer);
            this.stats.connectMs ??= Math.round(performance.now() - this.offerAt);
            setState("connected");
            this.startStats();
            break;
          case "failed":
            this.end("no-connectivity", "The network path to the device failed.");
            break;
        }
      };
    }

    watchFirstFrame() {
      const video = ui.video;
      const record = () => {
        if (!this.closed && this.stats.ttffMs === null) this.stats.ttffMs = Math.round(performance.now() - this.offerAt);
      };
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(record);
      else video.addEventListener("loadeddata", record, { once: true });
    }

    onSignal(payload) {
      const msg = parseJson(payload);
      if (!msg || msg.v !== PROTOCOL_VERSION || typeof msg.type !== "string") return;
      if (msg.type in this.lastPayload) {
        const text = new TextDecoder().decode(payload);
        if (this.lastPayload[msg.type] === text) return;
        this.lastPayload[msg.type] = text;
      }
      this.inbox = this.inbox.then(() => this.apply(msg)).catch((e) => console.warn("peercam: signal not applied", e));
    }

    async apply(msg) {
      if (this.closed) return;
      switch (msg.type) {
        case "ice-servers":
          this.iceServersReply?.(msg.ice_servers);
          break;
        case "answer":
          await this.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
          break;
        case "candidate":
          if (!this.pc?.remoteDescription) return;
          await this.pc.addIceCandidate({
            candidate: msg.candidate ?? "",
            sdpMid: msg.sdpMid ?? (msg.sdpMLineIndex == null ? this.pc.getTransceivers()[0]?.mid : undefined),
            sdpMLineIndex: msg.sdpMLineIndex ?? (msg.sdpMid == null ? 0 : undefined),
            usernameFragment: msg.usernameFragment ?? undefined,
          });
          break;
        case "talk":
          this.onTalkReply(msg);
          break;
        case "event":
          this.onEvent(msg.event);
          break;
        case "error":
          this.onDeviceError(msg);
          break;
        case "bye":
          if (this.stats.connectMs === null) {
            this.end("no-connectivity", `The device ended the call before media connected${msg.reason ? ` (${msg.reason})` : ""}. If it is behind NAT, configure a TURN server in its ice_servers.`, null, true);
          } else {
            this.end(null, null, `the device ended the call${msg.reason ? `: ${msg.reason}` : ""}`);
          }
          break;
      }
    }

    onDeviceError(msg) {
      const name = this.device.name || this.device.id;
      const detail = typeof msg.message === "string" ? msg.message : "";
      const firstOffer = msg.re === "offer" && this.pc?.connectionState !== "connected";
      if (msg.re === "talk") {
        this.onTalkRefused(msg.code);
        showError(msg.code || "internal", `${name} cannot take talk-back: ${detail || msg.code}`);
      } else if (msg.code === "busy") {
        this.end("busy", `${name} is busy: it already serves as many viewers as it allows. ${detail}`.trim(), null, firstOffer);
      } else if (firstOffer || msg.re === "ice-servers") {
        this.end(msg.code || "internal", `${name} refused the call: ${detail || msg.code}`, null, firstOffer);
      } else {
        showError(msg.code || "internal", `${name}: ${detail || msg.code}`);
      }
    }

    /** Asks for (`on`) or releases the talk floor. Releasing silences the mic at once; asking waits for the grant. */
    requestTalk(on) {
      if (this.closed || !this.offerPublished) return false;
      const talk = this.talk;
      talk.want = on;
      if (!on && talk.holding) {
        talk.holding = false;
        talk.holder = null;
      }
      talk.outstanding += 1;
      this.applyFloor();
      this.send({ type: "talk", on });
      return true;
    }

    /**
     * The device's answer to a `talk`. Only the answer to the latest request
     * decides: an earlier one is stale. The floor is ours only if granted
     * while we still want it; the grant's `holder` is our own label.
     */
    onTalkReply(msg) {
      const talk = this.talk;
      const reply = { granted: msg.granted === true, holder: typeof msg.holder === "string" ? msg.holder : null };
      talk.lastReply = reply;
      talk.outstanding = Math.max(0, talk.outstanding - 1);
      if (talk.outstanding === 0) {
        talk.holding = reply.granted && talk.want;
        if (reply.granted) talk.ownLabel = reply.holder;
        else talk.want = false;
        talk.holder = reply.holder;
      }
      this.applyFloor();
    }

    /** An `error` answering a `talk`: no floor; `unsupported` means never on this call. */
    onTalkRefused(code) {
      const talk = this.talk;
      talk.outstanding = Math.max(0, talk.outstanding - 1);
      talk.want = false;
      talk.holding = false;
      if (code === "unsupported") talk.unsupported = true;
      this.applyFloor();
    }

    onEvent(event) {
      if (!event || typeof event !== "object") return;
      if (event.type === "ring") onRing(event, this.device);
      else if (event.type === "talk") this.onFloorChange(event);
    }

    /**
     * A floor change announced to every session. Plain-mode labels are all
     * "viewer", so whether we hold the floor comes from our grant: we lose
     * it when the floor goes free, or to a label other than the one granted.
     */
    onFloorChange(event) {
      const talk = this.talk;
      talk.events.push(event);
      talk.holder = typeof event.holder === "string" ? event.holder : null;
      if (talk.holding && (talk.holder === null || (talk.ownLabel !== null && talk.holder !== talk.ownLabel))) {
        talk.holding = false;
        talk.want = false;
      }
      this.applyFloor();
    }

    /** The mic speaks only while this viewer holds the floor; no renegotiation. */
    applyFloor() {
      if (this.mic) this.mic.enabled = this.talk.holding && !this.closed;
      renderAudio();
    }

    startStats() {
      if (this.statsTimer) return;
      ui.stats.hidden = false;
      const tick = async () => {
        if (this.closed) return;
        try {
          Object.assign(this.stats, await readStats(this.pc, this));
          ui.stats.textContent = describeStats(this.stats);
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
      if (code) fail(code, message);
      else {
        if (note) showError(null, note);
        setState("ended");
      }
    }

    close() {
      if (this.closed) return;
      this.closed = true;
      clearTimeout(this.connectTimer);
      clearInterval(this.statsTimer);
      this.client.unsubscribe(this.outTopic);
      this.pc?.close();
      this.mic?.stop();
      this.talk.want = false;
      this.talk.holding = false;
      ui.video.srcObject = null;
      renderAudio();
    }
  }

  function emptyStats() {
    return {
      framesDecoded: 0, frameWidth: 0, frameHeight: 0, fps: 0, bitrateKbps: 0, rttMs: null,
      localCandidateType: null, remoteCandidateType: null, codec: null, connectMs: null, ttffMs: null, packetsReceived: 0,
      audioPacketsReceived: 0, audioPacketsLost: 0, totalAudioEnergy: 0, audioLevel: null, jitterBufferDelayMs: null, audioPacketsSent: 0,
    };
  }

  /** Reads the numbers the overlay shows from `getStats()`. */
  async function readStats(pc, call) {
    const report = await pc.getStats();
    const out = {};
    let pair = null;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        out.framesDecoded = s.framesDecoded ?? 0;
        out.frameWidth = s.frameWidth ?? 0;
        out.frameHeight = s.frameHeight ?? 0;
        out.fps = s.framesPerSecond ?? 0;
        out.packetsReceived = s.packetsReceived ?? 0;
        const codec = s.codecId && report.get(s.codecId);
        out.codec = codec ? codec.mimeType.replace(/^video\//, "") : null;
        const now = s.timestamp;
        if (call.lastBytes) {
          const seconds = (now - call.lastBytes.at) / 1000;
          if (seconds > 0) out.bitrateKbps = Math.round(((s.bytesReceived - call.lastBytes.bytes) * 8) / 1000 / seconds);
        }
        call.lastBytes = { at: now, bytes: s.bytesReceived ?? 0 };
      }
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.audioPacketsReceived = s.packetsReceived ?? 0;
        out.audioPacketsLost = s.packetsLost ?? 0;
        out.totalAudioEnergy = s.totalAudioEnergy ?? 0;
        out.audioLevel = s.audioLevel ?? null;
        out.jitterBufferDelayMs = s.jitterBufferEmittedCount > 0 ? Math.round((s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000) : null;
      }
      if (s.type === "outbound-rtp" && s.kind === "audio") out.audioPacketsSent = s.packetsSent ?? 0;
      if (s.type === "transport" && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
    });
    if (!pair) report.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
    if (pair) {
      out.rttMs = pair.currentRoundTripTime != null ? Math.round(pair.currentRoundTripTime * 1000) : null;
      out.localCandidateType = report.get(pair.localCandidateId)?.candidateType ?? null;
      out.remoteCandidateType = report.get(pair.remoteCandidateId)?.candidateType ?? null;
    }
    if (call.stats.ttffMs === null && out.framesDecoded > 0) out.ttffMs = Math.round(performance.now() - call.offerAt);
    return out;
  }

  function describeStats(s) {
    const lines = [
      `${s.frameWidth}×${s.frameHeight} ${s.codec ?? ""} · ${Math.round(s.fps)} fps · ${s.bitrateKbps} kb/s`,
      `RTT ${s.rttMs ?? "?"} ms · ${s.localCandidateType ?? "?"} ↔ ${s.remoteCandidateType ?? "?"}`,
      `connected in ${s.connectMs ?? "?"} ms · first frame ${s.ttffMs ?? "?"} ms · ${s.framesDecoded} frames`,
    ];
    if (s.audioPacketsReceived > 0 || s.audioPacketsSent > 0) {
      lines.push(`audio ${s.audioPacketsReceived} packets (${s.audioPacketsLost} lost)${s.audioPacketsSent > 0 ? ` · ${s.audioPacketsSent} sent` : ""}`
        + ` · level ${s.audioLevel?.toFixed(2) ?? "?"} · jitter buffer ${s.jitterBufferDelayMs ?? "?"} ms`);
    }
    return lines.join("\n");
  }

  function hangup() {
    viewer.call?.end(null, null, "hung up");
  }

  // ---- audio and talk-back ----

  /**
   * The microphone, disabled (silent) until this viewer holds the floor; null,
   * with a note, when there is none. Bounded: an unanswered permission prompt
   * must not hold up the video.
   */
  async function openMic() {
    if (!navigator.mediaDevices?.getUserMedia) {
      setAudioNote("Talk-back needs a microphone, and this page cannot ask for one: open it over https:// (or on localhost).");
      return null;
    }
    const request = navigator.mediaDevices.getUserMedia({ audio: true });
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error("no answer to the permission prompt"), { name: "TimeoutError" })), MIC_WAIT_MS);
    });
    try {
      const [track] = (await Promise.race([request, timeout])).getAudioTracks();
      if (!track) throw Object.assign(new Error("no audio track"), { name: "NotFoundError" });
      track.enabled = false;
      return track;
    } catch (e) {
      request.then((stream) => stream.getTracks().forEach((t) => t.stop()), () => {});
      const why = {
        NotAllowedError: "microphone access was not allowed",
        NotFoundError: "no microphone was found",
        NotReadableError: "the microphone is in use or unavailable",
        TimeoutError: "the browser did not get microphone permission in time",
      }[e.name] ?? e.message;
      setAudioNote(`Talk-back needs a microphone (${why}); you can still watch and listen.`);
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

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
   * autoplay forbids sound, plays muted and offers an unmute button.
   */
  async function play() {
    const video = ui.video;
    if (!video.srcObject) return;
    const withSound = !!liveCall()?.remoteAudio && !viewer.userMuted;
    video.muted = !withSound;
    renderAudio();
    try {
      await video.play();
      if (withSound) viewer.soundBlocked = false;
    } catch (e) {
      if (e.name !== "NotAllowedError" || video.muted) return;
      viewer.soundBlocked = true;
      video.muted = true;
      await video.play().catch(() => {});
    } finally {
      renderAudio();
    }
  }

  function mute(muted) {
    viewer.userMuted = muted;
    return play();
  }

  /** Talk needs a live connected call, a device that listens, a mic and an answer that takes our audio. */
  function canTalk(call) {
    return !!call && viewer.state === "connected" && call.device.audio === "sendrecv" && call.mic !== null
      && call.audioDirection === "sendrecv" && !call.talk.unsupported
      && ["sendrecv", "sendonly"].includes(call.audioTransceiver?.currentDirection);
  }

  function holderText(talk) {
    if (talk?.holding) return "You are talking";
    if (talk?.holder) return `${talk.holder} is talking`;
    return "nobody is talking";
  }

  function renderAudio() {
    const call = liveCall();
    const talkable = canTalk(call);
    if (!talkable) press.active = false;
    ui.talk.disabled = !talkable;
    ui.talk.setAttribute("aria-pressed", String(!!call?.talk.want));
    ui.talk.classList.toggle("live", !!call?.talk.holding);
    ui.talkHolder.textContent = holderText(call?.talk);
    const sound = !!call?.remoteAudio;
    ui.mute.disabled = !sound;
    ui.mute.textContent = sound && ui.video.muted ? "Unmute" : "Mute";
    ui.unmute.hidden = !(sound && viewer.soundBlocked && ui.video.muted);
    ui.audioNote.textContent = viewer.audioNote ?? "";
    ui.audioNote.hidden = !viewer.audioNote;
  }

  function setTalk(on) {
    return liveCall()?.requestTalk(on) ?? false;
  }

  /** A copy of the talk state for `window.peercamViewer`. */
  function talkSnapshot(call) {
    const talk = call?.talk;
    return {
      holding: !!talk?.holding,
      holder: talk?.holder ?? null,
      lastReply: talk?.lastReply ? { ...talk.lastReply } : null,
      events: talk ? talk.events.map((e) => ({ ...e })) : [],
      requesting: !!talk && talk.want && !talk.holding && talk.outstanding > 0,
    };
  }

  // ---- doorbell ----

  /** `HH:MM:SS` in local time. */
  function clock(date) {
    return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
  }

  /** Shows the ring alert for RING_SHOW_MS (a new ring restarts it), and notifies where allowed. */
  function onRing(event, device) {
    viewer.rings.push(event);
    const at = new Date(event.at);
    const when = clock(Number.isNaN(at.getTime()) ? new Date() : at);
    ui.ringText.textContent = `🔔 Someone is at the door (${when})`;
    ui.ring.hidden = false;
    clearTimeout(viewer.ringTimer);
    viewer.ringTimer = setTimeout(dismissRing, RING_SHOW_MS);
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      new Notification(device.name || device.id, { body: `Someone is at the door (${when})`, tag: `peercam-ring-${device.id}`, renotify: true });
    } catch (e) {
      // Chrome on Android only notifies through a service worker; the alert on the page still shows.
      console.warn("peercam: notification", e);
    }
  }

  function dismissRing() {
    clearTimeout(viewer.ringTimer);
    ui.ring.hidden = true;
  }

  /** The notification button shows only while the browser can still ask. */
  function renderNotify() {
    ui.notify.hidden = !("Notification" in window && Notification.permission === "default");
  }

  // ---- wiring ----

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    history.replaceState(null, "", linkFragment());
    start(parseLink(location.hash));
  });
  ui.call.addEventListener("click", startCall);
  ui.hangup.addEventListener("click", hangup);

  // Push-to-talk: a press shorter than TOGGLE_PRESS_MS latches talk on (the
  // next press stops it); a longer one talks while held. Keyboard and
  // assistive-technology clicks (detail 0) toggle.
  ui.talk.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || ui.talk.disabled) return;
    if (liveCall()?.talk.want) {
      setTalk(false);
      return;
    }
    press.active = true;
    press.at = performance.now();
    setTalk(true);
  });
  const releaseTalk = (event) => {
    if (!press.active) return;
    press.active = false;
    const held = performance.now() - press.at >= TOGGLE_PRESS_MS;
    if ((held || event.type !== "pointerup") && liveCall()?.talk.want) setTalk(false);
  };
  for (const type of ["pointerup", "pointerleave", "pointercancel"]) ui.talk.addEventListener(type, releaseTalk);
  ui.talk.addEventListener("click", (event) => {
    if (event.detail === 0 && !ui.talk.disabled) setTalk(!liveCall()?.talk.want);
  });
  ui.talk.addEventListener("keydown", (event) => {
    if (event.repeat && (event.key === " " || event.key === "Enter")) event.preventDefault();
  });
  ui.talk.addEventListener("contextmenu", (event) => event.preventDefault());
  ui.mute.addEventListener("click", () => mute(!ui.video.muted));
  ui.unmute.addEventListener("click", () => mute(false));
  ui.ringDismiss.addEventListener("click", dismissRing);
  ui.notify.addEventListener("click", () => Notification.requestPermission().then(renderNotify, renderNotify));
  window.addEventListener("hashchange", () => start(parseLink(location.hash)));
  window.addEventListener("pagehide", () => viewer.call?.end(null, null, "page closed"));

  function start(link) {
    viewer.call?.close();
    viewer.call = null;
    viewer.link = link;
    if (!link) {
      ui.broker.value = `ws://${location.hostname || "127.0.0.1"}:8083`;
      setState("idle");
      return;
    }
    if (link.problem) {
      fail("unsupported", link.problem);
      return;
    }
    ui.broker.value = link.broker;
    ui.prefix.value = link.prefix;
    ui.user.value = link.username ?? "";
    ui.pass.value = link.password ?? "";
    viewer.selected = link.device;
    if (link.key) {
      fail("unsupported", "This is a sealed-mode pairing link; this viewer does not support sealed signaling yet.");
      return;
    }
    connectBroker(link);
  }

  window.peercamViewer = {
    get state() { return viewer.state; },
    get error() { return viewer.error; },
    get devices() { return [...viewer.devices.values()]; },
    get sessionId() { return viewer.call?.sessionId ?? null; },
    get stats() { return viewer.call ? { ...viewer.call.stats } : emptyStats(); },
    get talk() { return talkSnapshot(viewer.call); },
    get rings() { return viewer.rings.map((r) => ({ ...r })); },
    get ringVisible() { return !ui.ring.hidden; },
    get audio() {
      const mic = liveCall()?.mic;
      return {
        direction: viewer.call?.audioDirection ?? null,
        micTrack: mic?.readyState === "live",
        micEnabled: mic?.readyState === "live" && mic.enabled,
        muted: ui.video.muted,
        soundBlocked: viewer.soundBlocked && ui.video.muted,
        note: viewer.audioNote,
      };
    },
    call: startCall,
    hangup,
    setTalk: (on) => setTalk(on === true),
    mute: (muted) => mute(muted !== false),
  };

  renderNotify();
  start(parseLink(location.hash));
})();
