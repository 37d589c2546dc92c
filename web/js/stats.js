// The numbers the stats overlay shows, from `RTCPeerConnection.getStats()`
// reports: pure functions over the report (anything with `forEach` and
// `get`, such as a Map of stats objects in the unit tests).

const MS_PER_SECOND = 1000;
const BITS_PER_BYTE = 8;
const BITS_PER_KILOBIT = 1000;

/** The stats of a call before its first report. */
export function emptyStats() {
  return {
    framesDecoded: 0, frameWidth: 0, frameHeight: 0, fps: 0, bitrateKbps: 0, rttMs: null,
    localCandidateType: null, localRelayProtocol: null, remoteCandidateType: null, iceRestarts: 0, codec: null, connectMs: null, ttffMs: null, packetsReceived: 0,
    audioPacketsReceived: 0, audioPacketsLost: 0, totalAudioEnergy: 0, audioLevel: null, jitterBufferDelayMs: null, audioPacketsSent: 0,
    sealed: false, signalsDropped: 0,
  };
}

/**
 * The overlay's numbers from one `report`, as `{ values, sample }`. The
 * path is the selected candidate pair's: the local and remote candidate
 * types (host, srflx, prflx, relay) and, for a local relay, how this
 * browser reaches the TURN server (`localRelayProtocol`: udp, tcp, tls).
 * `previous.sample` is the video byte count of the last report (null at
 * first), which the bitrate is measured against; pass the returned
 * `sample` next time. `previous.ttffMs` null and decoded frames make the
 * time to first frame `now - offerAt`. `values` holds only what the report
 * tells; merge it into the call's stats.
 */
export function readStats(report, { sample, ttffMs, offerAt, now }) {
  const values = {};
  let nextSample = sample;
  let pair = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      Object.assign(values, videoValues(s, report));
      if (sample) {
        const seconds = (s.timestamp - sample.at) / MS_PER_SECOND;
        if (seconds > 0) values.bitrateKbps = Math.round(((s.bytesReceived - sample.bytes) * BITS_PER_BYTE) / BITS_PER_KILOBIT / seconds);
      }
      nextSample = { at: s.timestamp, bytes: s.bytesReceived ?? 0 };
    }
    if (s.type === "inbound-rtp" && s.kind === "audio") Object.assign(values, audioValues(s));
    if (s.type === "outbound-rtp" && s.kind === "audio") values.audioPacketsSent = s.packetsSent ?? 0;
    if (s.type === "transport" && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
  });
  if (!pair) report.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
  if (pair) {
    const local = report.get(pair.localCandidateId);
    values.rttMs = pair.currentRoundTripTime != null ? Math.round(pair.currentRoundTripTime * MS_PER_SECOND) : null;
    values.localCandidateType = local?.candidateType ?? null;
    values.localRelayProtocol = local?.candidateType === "relay" ? local.relayProtocol ?? null : null;
    values.remoteCandidateType = report.get(pair.remoteCandidateId)?.candidateType ?? null;
  }
  if (ttffMs === null && values.framesDecoded > 0) values.ttffMs = Math.round(now - offerAt);
  return { values, sample: nextSample };
}

function videoValues(s, report) {
  const codec = s.codecId && report.get(s.codecId);
  return {
    framesDecoded: s.framesDecoded ?? 0,
    frameWidth: s.frameWidth ?? 0,
    frameHeight: s.frameHeight ?? 0,
    fps: s.framesPerSecond ?? 0,
    packetsReceived: s.packetsReceived ?? 0,
    codec: codec ? codec.mimeType.replace(/^video\//, "") : null,
  };
}

function audioValues(s) {
  return {
    audioPacketsReceived: s.packetsReceived ?? 0,
    audioPacketsLost: s.packetsLost ?? 0,
    totalAudioEnergy: s.totalAudioEnergy ?? 0,
    audioLevel: s.audioLevel ?? null,
    jitterBufferDelayMs: s.jitterBufferEmittedCount > 0 ? Math.round((s.jitterBufferDelay / s.jitterBufferEmittedCount) * MS_PER_SECOND) : null,
  };
}

/** The call's path as `local ↔ remote` candidate types, the relay's protocol with a local relay: `relay(tcp) ↔ srflx`. */
export function describePath(s) {
  const local = `${s.localCandidateType ?? "?"}${s.localRelayProtocol ? `(${s.localRelayProtocol})` : ""}`;
  return `${local} ↔ ${s.remoteCandidateType ?? "?"}`;
}

/**
 * The overlay's text: one line each for video, network (with ICE restarts
 * and dropped signaling messages, if any, and whether signaling is
 * sealed), timing (with the glass-to-glass estimate `glassMs`, see
 * glass.js, when frames carry a stamp), and audio once there is any.
 */
export function describeStats(s, glassMs = null) {
  const restarts = s.iceRestarts > 0 ? ` · ${s.iceRestarts} ICE restart${s.iceRestarts === 1 ? "" : "s"}` : "";
  const dropped = s.signalsDropped > 0 ? ` · ${s.signalsDropped} signal${s.signalsDropped === 1 ? "" : "s"} dropped` : "";
  const lines = [
    `${s.frameWidth}×${s.frameHeight} ${s.codec ?? ""} · ${Math.round(s.fps)} fps · ${s.bitrateKbps} kb/s`,
    `RTT ${s.rttMs ?? "?"} ms · ${describePath(s)}${restarts}${s.sealed ? " · sealed" : ""}${dropped}`,
    `connected in ${s.connectMs ?? "?"} ms · first frame ${s.ttffMs ?? "?"} ms · ${s.framesDecoded} frames${glassMs === null ? "" : ` · glass-to-glass ${Math.round(glassMs)} ms`}`,
  ];
  if (s.audioPacketsReceived > 0 || s.audioPacketsSent > 0) {
    lines.push(`audio ${s.audioPacketsReceived} packets (${s.audioPacketsLost} lost)${s.audioPacketsSent > 0 ? ` · ${s.audioPacketsSent} sent` : ""}`
      + ` · level ${s.audioLevel?.toFixed(2) ?? "?"} · jitter buffer ${s.jitterBufferDelayMs ?? "?"} ms`);
  }
  return lines.join("\n");
}

/**
 * The overlay's one line, what matters most first (picture, network, then
 * timing and audio), so a narrow screen that cuts it keeps the start: the
 * same facts as describeStats, joined by " · ".
 */
export function describeStatsLine(s, glassMs = null) {
  return describeStats(s, glassMs).split("\n").join(" · ");
}
