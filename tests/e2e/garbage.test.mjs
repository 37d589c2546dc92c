// Garbage on P/D/in/S gets the documented error or a silent drop, and a
// viewer already watching keeps decoding throughout.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { e2eTest, freshNames, launchBrowser, mqttRecorder, openViewer, startDaemon, startMosquitto, viewerState, waitFor, waitForFrames } from "./lib.mjs";

const sessionId = () => randomBytes(16).toString("base64url");
const v1 = (body) => JSON.stringify({ v: 1, ...body });

/** Payloads that must get an `error` with `code` (and `re`), each on a fresh session. */
const ANSWERED = [
  { what: "wrong v", payload: JSON.stringify({ v: 2, type: "offer", sdp: "v=0" }), code: "unsupported", re: "offer" },
  { what: "v = 1.5", payload: '{"v":1.5,"type":"offer","sdp":"v=0"}', code: "unsupported", re: "offer" },
  { what: "bad SDP", payload: v1({ type: "offer", sdp: "this is not SDP" }), code: "bad-request", re: "offer" },
  { what: "offer without sdp", payload: v1({ type: "offer" }), code: "bad-request", re: "offer" },
  { what: "unknown type", payload: v1({ type: "dance" }), code: "unsupported", re: "dance" },
  { what: "no type", payload: v1({ sdp: "v=0" }), code: "bad-request", re: "" },
  { what: "candidate without prefix", payload: v1({ type: "candidate", candidate: "1 1 udp 1 127.0.0.1 9 typ host", sdpMid: "0" }), code: "bad-request", re: "candidate" },
  { what: "talk without audio", payload: v1({ type: "talk", on: true }), code: "bad-request", re: "talk" },
];

/** Payloads that must be dropped without a word. */
const DROPPED = [
  { what: "not JSON", payload: "hello device" },
  { what: "not UTF-8", payload: Buffer.from([0xff, 0xfe, 0x00, 0x7b]) },
  { what: "a JSON array", payload: "[1,2,3]" },
  { what: "no v", payload: JSON.stringify({ type: "offer", sdp: "v=0" }) },
  { what: "v as a string", payload: JSON.stringify({ v: "1", type: "offer", sdp: "v=0" }) },
  { what: "over 64 KiB", payload: v1({ type: "offer", sdp: "v=0\r\n" + "a=x\r\n".repeat(14000) }) },
  { what: "candidate for an unknown session", payload: v1({ type: "candidate", candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", sdpMid: "0", sdpMLineIndex: 0 }) },
  { what: "bye for an unknown session", payload: v1({ type: "bye" }) },
];

e2eTest("garbage on in/S is answered or dropped as documented while a viewer keeps watching", async (cleanup) => {
  const broker = await startMosquitto(cleanup);
  const names = freshNames();
  const base = `${names.prefix}/${names.device}`;
  const recorder = await mqttRecorder(cleanup, broker.tcpUrl, [`${base}/#`]);
  // A retained offer left on the broker reaches the device flagged retained
  // when it subscribes: stale, so ignored.
  const retained = sessionId();
  await recorder.client.publishAsync(`${base}/in/${retained}`, v1({ type: "offer", sdp: "v=0" }), { qos: 1, retain: true });
  const daemon = await startDaemon(cleanup, { brokerUrl: broker.tcpUrl, ...names, width: 320, height: 240, bitrateKbps: 300 });
  const browser = await launchBrowser(cleanup);
  const page = await openViewer(browser, daemon, { brokerUrl: broker.wsUrl, ...names });
  await waitForFrames(page, 30, 40000);
  const live = (await viewerState(page)).sessionId;

  const answered = ANSWERED.map((c) => ({ ...c, session: sessionId() }));
  const dropped = [...DROPPED.map((c) => ({ ...c, session: sessionId() })), { what: "a retained offer", session: retained }];
  for (const c of [...answered, ...dropped.filter((d) => d.payload)]) await recorder.publish(`${base}/in/${c.session}`, c.payload);
  await recorder.publish(`${base}/in/too-short`, v1({ type: "ice-servers" }));
  await recorder.publish(`${base}/in/${sessionId()}/extra`, v1({ type: "ice-servers" }));

  // The live session itself: garbage is dropped, a malformed offer gets an
  // error, and the call goes on as it was.
  await recorder.publish(`${base}/in/${live}`, "{not json");
  await recorder.publish(`${base}/in/${live}`, v1({ type: "candidate", candidate: "garbage" }));

  for (const c of answered) {
    const reply = await recorder.waitJson(`${base}/out/${c.session}`, (m) => m.type === "error", `the error for "${c.what}"`, 10000);
    assert.equal(reply.code, c.code, c.what);
    assert.equal(reply.re, c.re, c.what);
    assert.ok(reply.message.length > 10, `"${c.what}" error says what was wrong: ${reply.message}`);
  }
  const liveError = await recorder.waitJson(`${base}/out/${live}`, (m) => m.type === "error", "the error on the live session", 10000);
  assert.equal(liveError.code, "bad-request");

  const before = (await viewerState(page)).stats.framesDecoded;
  await waitForFrames(page, before + 60, 15000);
  for (const c of dropped) {
    assert.deepEqual(recorder.json(`${base}/out/${c.session}`), [], `"${c.what}" is dropped silently`);
  }
  const outTopics = new Set(recorder.messages.map((m) => m.topic).filter((t) => t.includes("/out/")));
  const expected = new Set([...answered.map((c) => `${base}/out/${c.session}`), `${base}/out/${live}`]);
  const unexpected = recorder.messages.filter((m) => outTopics.has(m.topic) && !expected.has(m.topic));
  assert.deepEqual(unexpected, [], "nothing is sent to sessions that were dropped");
  const s = await viewerState(page);
  assert.equal(s.state, "connected");
  assert.equal(daemon.proc.exitCode, null, "the daemon is still running");
  await waitFor("status to show the one viewer", () => recorder.json(`${base}/status`).at(-1)?.viewers === 1, 5000);
});
