// Two-way audio with no sound card: the daemon's microphone and speaker are
// ALSA `file` PCMs, the browsers' microphones Chromium's fake device (a
// beep). Speech reaches the browser (and silence stays silent), the floor
// holder reaches the speaker (and nobody else does), the floor passes on
// when its holder vanishes, and `peercam ring` reaches every viewer.
import assert from "node:assert/strict";
import { alsaBench, e2eTest, freshNames, launchBrowser, mqttRecorder, openViewer, ring, startDaemon, startMosquitto, talk, talkState, viewerState, waitFor, waitForFrames } from "./lib.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until the viewer has received `packets` audio packets; resolves with its state. */
function waitForAudio(page, packets, timeoutMs = 20000) {
  return waitFor(`${packets} audio packets`, async () => {
    const s = await viewerState(page);
    return s.stats.audioPacketsReceived >= packets ? s : null;
  }, timeoutMs, 200);
}

async function audioDaemon(cleanup, bench, extra = {}) {
  const broker = await startMosquitto(cleanup);
  const names = freshNames();
  const daemon = await startDaemon(cleanup, { brokerUrl: broker.tcpUrl, ...names, width: 320, height: 240, bitrateKbps: 300, audio: bench, ...extra });
  return { broker, names, daemon, link: { brokerUrl: broker.wsUrl, ...names } };
}

for (const input of ["speech", "silence"]) {
  e2eTest(`device → browser: ${input} from the capture PCM arrives as ${input}`, async (cleanup) => {
    const bench = alsaBench(cleanup, { input, talkback: false });
    const { daemon, link } = await audioDaemon(cleanup, bench);
    const page = await openViewer(await launchBrowser(cleanup), daemon, link);
    await waitForFrames(page, 10, 40000);
    const first = await waitForAudio(page, 50);
    await sleep(3000);
    const s = (await viewerState(page)).stats;
    assert.ok(s.audioPacketsReceived >= first.stats.audioPacketsReceived + 100, `audio keeps flowing: ${s.audioPacketsReceived} packets`);
    const audio = await page.evaluate(() => window.peercamViewer.audio);
    assert.equal(audio.direction, "recvonly", "a sendonly device gets a listen-only offer");
    if (input === "speech") {
      assert.ok(s.totalAudioEnergy > 0.002, `speech energy ${s.totalAudioEnergy} is clearly above silence`);
    } else {
      assert.ok(s.totalAudioEnergy < 0.0001, `silence energy ${s.totalAudioEnergy} stays near zero`);
    }
    console.log(`${input}: ${s.audioPacketsReceived} packets, energy ${s.totalAudioEnergy}, browser jitter buffer ${s.jitterBufferDelayMs} ms`);
  });
}

e2eTest("browser → device: only the floor holder's microphone reaches the speaker", async (cleanup) => {
  const bench = alsaBench(cleanup, { input: "silence" });
  const { daemon, link } = await audioDaemon(cleanup, bench);
  const page = await openViewer(await launchBrowser(cleanup), daemon, link);
  await waitForFrames(page, 10, 40000);
  await waitFor("the microphone to be sent", async () => (await viewerState(page)).stats.audioPacketsSent > 50, 15000, 200);
  assert.equal((await page.evaluate(() => window.peercamViewer.audio)).direction, "sendrecv");
  await sleep(2000);
  const unheld = bench.playedRms();
  assert.ok(unheld < 0.0005, `without the floor the speaker stays silent (RMS ${unheld})`);

  const reply = await talk(page, true);
  assert.deepEqual(reply, { granted: true, holder: "viewer" });
  await waitFor("the speaker to play the viewer", () => bench.playedRms() > 0.005, 15000, 250);
  console.log(`talk-back RMS with the floor: ${bench.playedRms().toFixed(4)} (without: ${unheld})`);
  assert.deepEqual(await talk(page, false), { granted: false, holder: null });
});

e2eTest("floor: one talker at a time, passed on when the holder vanishes, video never stops", async (cleanup) => {
  const bench = alsaBench(cleanup, { input: "silence" });
  const { daemon, link, names, broker } = await audioDaemon(cleanup, bench, { webrtc: "peer_timeout_secs = 4" });
  const base = `${names.prefix}/${names.device}`;
  const recorder = await mqttRecorder(cleanup, broker.tcpUrl, [`${base}/event`]);
  const browserA = await launchBrowser(cleanup);
  const a = await openViewer(browserA, daemon, link);
  const b = await openViewer(await launchBrowser(cleanup), daemon, link);
  await waitForFrames(a, 10, 40000);
  await waitForFrames(b, 10, 40000);
  const framesB = (await viewerState(b)).stats.framesDecoded;

  assert.deepEqual(await talk(a, true), { granted: true, holder: "viewer" });
  assert.deepEqual(await talk(b, true), { granted: false, holder: "viewer" });
  for (const [name, page] of [["A", a], ["B", b]]) {
    await waitFor(`${name} to see A take the floor`, async () => (await talkState(page)).events.some((e) => e.holder === "viewer"), 10000);
  }
  assert.ok((await talkState(a)).holding, "A holds the floor");
  assert.ok(!(await talkState(b)).holding, "B does not");
  const framesA = (await viewerState(a)).stats.framesDecoded;
  await waitForFrames(a, framesA + 30, 10000);

  process.kill(browserA.pid, "SIGKILL");
  await waitFor("B to see the floor free again", async () => (await talkState(b)).events.at(-1)?.holder === null, 20000, 200);
  assert.deepEqual(await talk(b, true), { granted: true, holder: "viewer" });
  assert.ok((await talkState(b)).holding);
  const events = recorder.json(`${base}/event`).filter((e) => e?.type === "talk").map((e) => e.holder);
  assert.deepEqual(events, ["viewer", null, "viewer"], "P/D/event saw every change");
  const s = await waitForFrames(b, framesB + 150, 20000);
  assert.equal(s.state, "connected", "B watched throughout");
});

e2eTest("peercam ring reaches every viewer, in the page and on P/D/event", async (cleanup) => {
  const bench = alsaBench(cleanup, { input: "silence" });
  const { daemon, link, names, broker } = await audioDaemon(cleanup, bench);
  const base = `${names.prefix}/${names.device}`;
  const recorder = await mqttRecorder(cleanup, broker.tcpUrl, [`${base}/event`]);
  const browser = await launchBrowser(cleanup);
  const pages = [await openViewer(browser, daemon, link), await openViewer(await launchBrowser(cleanup), daemon, link)];
  for (const page of pages) await waitForFrames(page, 10, 40000);
  for (const page of pages) assert.equal(await page.evaluate(() => window.peercamViewer.ringVisible), false);

  ring(daemon);
  for (const page of pages) {
    await waitFor("the ring alert", () => page.evaluate(() => window.peercamViewer.ringVisible), 10000);
    assert.ok(await page.isVisible("#ring"));
    assert.match(await page.textContent("#ring"), /door/i);
  }
  const event = await recorder.waitJson(`${base}/event`, (e) => e.type === "ring", "the ring on P/D/event", 5000);
  assert.match(event.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const rings = await pages[0].evaluate(() => window.peercamViewer.rings);
  assert.deepEqual(rings.map((r) => r.at), [event.at]);
});

e2eTest("echo cancellation on (GStreamer webrtcdsp): speech still reaches the browser and the floor holder the speaker", async (cleanup) => {
  const bench = alsaBench(cleanup, { input: "speech", live: true, extraAudio: "echo_cancel = true" });
  const { daemon, link } = await audioDaemon(cleanup, bench);
  const page = await openViewer(await launchBrowser(cleanup), daemon, link);
  await waitForFrames(page, 10, 40000);
  await waitForAudio(page, 100);
  await waitFor("speech energy through the echo canceller", async () => (await viewerState(page)).stats.totalAudioEnergy > 0.002, 15000, 250);
  assert.deepEqual(await talk(page, true), { granted: true, holder: "viewer" });
  await waitFor("the speaker to play the viewer through the echo probe", () => bench.playedRms() > 0.005, 15000, 250);
  assert.match(daemon.log, /talk-back plays on `spk`/);
});

e2eTest("a microphone that cannot be opened is retried with backoff while video plays on", async (cleanup) => {
  const bench = alsaBench(cleanup, { input: "silence", talkback: false });
  bench.config = bench.config.replace('capture_device = "mic"', 'capture_device = "nosuchmic"');
  const { daemon, link } = await audioDaemon(cleanup, bench);
  const page = await openViewer(await launchBrowser(cleanup), daemon, link);
  const before = (await waitForFrames(page, 10, 40000)).stats.framesDecoded;
  await waitFor("a second attempt at the microphone", () => (daemon.log.match(/reopening the audio capture device in/g) ?? []).length >= 2, 15000, 200);
  assert.match(daemon.log, /cannot open ALSA capture device `nosuchmic`/);
  const s = await waitForFrames(page, before + 60, 15000);
  assert.equal(s.state, "connected");
});
