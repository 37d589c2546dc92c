// The overlay's numbers from getStats() reports (fixtures shaped like Chromium's).
import assert from "node:assert/strict";
import { test } from "node:test";
import { describePath, describeStats, describeStatsLine, emptyStats, readStats } from "../js/stats.js";

/** A report as getStats() returns it: stats objects by id. */
function report(...stats) {
  return new Map(stats.map((s) => [s.id, s]));
}

function video(timestamp, bytesReceived, extra = {}) {
  return {
    id: "IT01V", type: "inbound-rtp", kind: "video", timestamp, bytesReceived, codecId: "CIT01_102",
    framesDecoded: 240, frameWidth: 640, frameHeight: 360, framesPerSecond: 29.97, packetsReceived: 900, ...extra,
  };
}

const CODEC = { id: "CIT01_102", type: "codec", mimeType: "video/H264" };
const LOCAL = { id: "I-local", type: "local-candidate", candidateType: "host" };
const REMOTE = { id: "I-remote", type: "remote-candidate", candidateType: "srflx" };
const PAIR = { id: "CP-1", type: "candidate-pair", localCandidateId: "I-local", remoteCandidateId: "I-remote", currentRoundTripTime: 0.0234, nominated: true, state: "succeeded" };
const TRANSPORT = { id: "T01", type: "transport", selectedCandidatePairId: "CP-1" };
const FIRST = { sample: null, ttffMs: null, offerAt: 1000, now: 1850 };

test("video numbers, codec, round trip and candidate types come from one report", () => {
  const { values, sample } = readStats(report(video(10000, 500000), CODEC, LOCAL, REMOTE, PAIR, TRANSPORT), FIRST);
  assert.equal(values.framesDecoded, 240);
  assert.equal(values.frameWidth, 640);
  assert.equal(values.frameHeight, 360);
  assert.equal(values.fps, 29.97);
  assert.equal(values.packetsReceived, 900);
  assert.equal(values.codec, "H264");
  assert.equal(values.rttMs, 23);
  assert.equal(values.localCandidateType, "host");
  assert.equal(values.localRelayProtocol, null);
  assert.equal(values.remoteCandidateType, "srflx");
  assert.equal(values.bitrateKbps, undefined, "no bitrate from a single report");
  assert.deepEqual(sample, { at: 10000, bytes: 500000 });
});

test("the bitrate is the byte growth between two reports over their time apart", () => {
  const first = readStats(report(video(10000, 500000), CODEC), FIRST);
  // 75 000 bytes in 1.5 s = 600 000 bit / 1.5 s = 400 kb/s.
  const second = readStats(report(video(11500, 575000), CODEC), { ...FIRST, sample: first.sample, ttffMs: 850 });
  assert.equal(second.values.bitrateKbps, 400);
  assert.deepEqual(second.sample, { at: 11500, bytes: 575000 });
});

test("a report with the same timestamp gives no bitrate instead of dividing by zero", () => {
  const { values } = readStats(report(video(10000, 600000), CODEC), { ...FIRST, sample: { at: 10000, bytes: 500000 } });
  assert.equal(values.bitrateKbps, undefined);
});

test("time to first frame: offer to the first report with decoded frames, recorded once", () => {
  assert.equal(readStats(report(video(1, 1)), FIRST).values.ttffMs, 850);
  assert.equal(readStats(report(video(1, 1, { framesDecoded: 0 })), FIRST).values.ttffMs, undefined, "not before a frame");
  assert.equal(readStats(report(video(1, 1)), { ...FIRST, ttffMs: 400 }).values.ttffMs, undefined, "not twice");
});

test("without a transport's selected pair, the nominated succeeded pair is used", () => {
  const losing = { ...PAIR, id: "CP-0", nominated: false, currentRoundTripTime: 0.5 };
  const { values } = readStats(report(video(1, 1), losing, PAIR, LOCAL, REMOTE, { id: "T01", type: "transport" }), FIRST);
  assert.equal(values.rttMs, 23);
  assert.equal(values.remoteCandidateType, "srflx");
});

test("a pair without a round trip yet has none; unknown candidates are null", () => {
  const { values } = readStats(report({ ...PAIR, currentRoundTripTime: undefined, remoteCandidateId: "gone" }, LOCAL, TRANSPORT), FIRST);
  assert.equal(values.rttMs, null);
  assert.equal(values.localCandidateType, "host");
  assert.equal(values.remoteCandidateType, null);
});

// Chromium's report of a call relayed through TURN over TCP, to a device's
// reflexive candidate, after the path moved from an earlier pair.
const RELAYED = [
  { id: "T01", type: "transport", selectedCandidatePairId: "CP-relay", dtlsState: "connected", iceState: "connected" },
  { id: "CP-host", type: "candidate-pair", transportId: "T01", localCandidateId: "I-host", remoteCandidateId: "I-dev-host", state: "failed", nominated: true, currentRoundTripTime: 0.001 },
  { id: "CP-relay", type: "candidate-pair", transportId: "T01", localCandidateId: "I-relay", remoteCandidateId: "I-dev-srflx", state: "succeeded", nominated: true, currentRoundTripTime: 0.0412 },
  { id: "I-host", type: "local-candidate", transportId: "T01", candidateType: "host", protocol: "udp", address: "192.168.1.20", port: 53000 },
  { id: "I-relay", type: "local-candidate", transportId: "T01", candidateType: "relay", protocol: "udp", relayProtocol: "tcp",
    address: "203.0.113.5", port: 49160, url: "turn:203.0.113.5:3478?transport=tcp", networkType: "wifi" },
  { id: "I-dev-host", type: "remote-candidate", transportId: "T01", candidateType: "host", protocol: "udp", address: "10.0.0.7", port: 40000 },
  { id: "I-dev-srflx", type: "remote-candidate", transportId: "T01", candidateType: "srflx", protocol: "udp", address: "198.51.100.9", port: 61000 },
];

test("a relayed path: the selected pair's local relay with its TURN protocol, and the remote type", () => {
  const { values } = readStats(report(...RELAYED), FIRST);
  assert.equal(values.localCandidateType, "relay");
  assert.equal(values.localRelayProtocol, "tcp");
  assert.equal(values.remoteCandidateType, "srflx");
  assert.equal(values.rttMs, 41);
  assert.equal(describePath({ ...emptyStats(), ...values }), "relay(tcp) ↔ srflx");
});

test("the path's types as the overlay writes them", () => {
  const path = (localCandidateType, localRelayProtocol, remoteCandidateType) => describePath({ localCandidateType, localRelayProtocol, remoteCandidateType });
  assert.equal(path("relay", "udp", "host"), "relay(udp) ↔ host");
  assert.equal(path("relay", "tls", "relay"), "relay(tls) ↔ relay");
  assert.equal(path("relay", null, "prflx"), "relay ↔ prflx", "a browser that does not report the relay protocol");
  assert.equal(path("srflx", null, "prflx"), "srflx ↔ prflx");
  assert.equal(path(null, null, null), "? ↔ ?");
});

test("a relay protocol is only read from a relay candidate", () => {
  const odd = { ...LOCAL, relayProtocol: "udp" };
  const { values } = readStats(report(odd, REMOTE, PAIR, TRANSPORT), FIRST);
  assert.equal(values.localCandidateType, "host");
  assert.equal(values.localRelayProtocol, null);
});

test("audio in and out: packets, loss, energy, level and the mean jitter buffer delay", () => {
  const { values } = readStats(report(
    { id: "IT01A", type: "inbound-rtp", kind: "audio", packetsReceived: 500, packetsLost: 3, totalAudioEnergy: 0.0123, audioLevel: 0.25, jitterBufferDelay: 24, jitterBufferEmittedCount: 480 },
    { id: "OT01A", type: "outbound-rtp", kind: "audio", packetsSent: 321 },
  ), FIRST);
  assert.equal(values.audioPacketsReceived, 500);
  assert.equal(values.audioPacketsLost, 3);
  assert.equal(values.totalAudioEnergy, 0.0123);
  assert.equal(values.audioLevel, 0.25);
  assert.equal(values.jitterBufferDelayMs, 50, "24 s over 480 samples emitted");
  assert.equal(values.audioPacketsSent, 321);
});

test("audio before anything was emitted has no jitter buffer delay", () => {
  const { values } = readStats(report({ id: "IT01A", type: "inbound-rtp", kind: "audio", jitterBufferDelay: 0, jitterBufferEmittedCount: 0 }), FIRST);
  assert.equal(values.jitterBufferDelayMs, null);
  assert.equal(values.audioPacketsReceived, 0);
});

test("the overlay says what is not known yet with question marks", () => {
  assert.equal(describeStats(emptyStats()), [
    "0×0  · 0 fps · 0 kb/s",
    "RTT ? ms · ? ↔ ?",
    "connected in ? ms · first frame ? ms · 0 frames",
  ].join("\n"));
});

test("the overlay of a two-way call", () => {
  const stats = {
    ...emptyStats(), frameWidth: 640, frameHeight: 360, codec: "H264", fps: 29.6, bitrateKbps: 412, rttMs: 3, localCandidateType: "host",
    remoteCandidateType: "host", connectMs: 180, ttffMs: 420, framesDecoded: 900, audioPacketsReceived: 1500, audioPacketsLost: 2,
    audioPacketsSent: 40, audioLevel: 0.1234, jitterBufferDelayMs: 60,
  };
  assert.equal(describeStats(stats), [
    "640×360 H264 · 30 fps · 412 kb/s",
    "RTT 3 ms · host ↔ host",
    "connected in 180 ms · first frame 420 ms · 900 frames",
    "audio 1500 packets (2 lost) · 40 sent · level 0.12 · jitter buffer 60 ms",
  ].join("\n"));
});

test("the overlay of a relayed call that restarted ICE", () => {
  const stats = { ...emptyStats(), rttMs: 41, localCandidateType: "relay", localRelayProtocol: "udp", remoteCandidateType: "srflx" };
  assert.equal(describeStats(stats).split("\n")[1], "RTT 41 ms · relay(udp) ↔ srflx");
  assert.equal(describeStats({ ...stats, iceRestarts: 1 }).split("\n")[1], "RTT 41 ms · relay(udp) ↔ srflx · 1 ICE restart");
  assert.equal(describeStats({ ...stats, iceRestarts: 2 }).split("\n")[1], "RTT 41 ms · relay(udp) ↔ srflx · 2 ICE restarts");
});

test("the network line says when signaling is sealed, and how many signaling messages were dropped", () => {
  const stats = { ...emptyStats(), rttMs: 5, localCandidateType: "host", remoteCandidateType: "host" };
  assert.equal(describeStats({ ...stats, sealed: true }).split("\n")[1], "RTT 5 ms · host ↔ host · sealed");
  assert.equal(describeStats({ ...stats, sealed: true, signalsDropped: 1 }).split("\n")[1], "RTT 5 ms · host ↔ host · sealed · 1 signal dropped");
  assert.equal(describeStats({ ...stats, signalsDropped: 3 }).split("\n")[1], "RTT 5 ms · host ↔ host · 3 signals dropped");
});

test("the timing line shows the glass-to-glass estimate while frames carry a stamp, and nothing without", () => {
  const stats = { ...emptyStats(), connectMs: 180, ttffMs: 420, framesDecoded: 900 };
  assert.equal(describeStats(stats, 94.6).split("\n")[2], "connected in 180 ms · first frame 420 ms · 900 frames · glass-to-glass 95 ms");
  assert.equal(describeStats(stats, 0).split("\n")[2], "connected in 180 ms · first frame 420 ms · 900 frames · glass-to-glass 0 ms");
  assert.equal(describeStats(stats, null).split("\n")[2], "connected in 180 ms · first frame 420 ms · 900 frames");
  assert.equal(describeStats(stats), describeStats(stats, null));
});

test("the overlay's one line holds every fact, the picture first", () => {
  const s = { ...emptyStats(), frameWidth: 640, frameHeight: 360, codec: "H264", fps: 30, bitrateKbps: 600, rttMs: 2, iceRestarts: 1 };
  const line = describeStatsLine(s, 80);
  assert.ok(!line.includes("\n"));
  assert.ok(line.startsWith("640×360 H264 · 30 fps · 600 kb/s · RTT 2 ms"), line);
  assert.match(line, /· 1 ICE restart/);
  assert.match(line, /glass-to-glass 80 ms$/);
});
