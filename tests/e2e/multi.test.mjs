// Several viewers at once: all decode, the status `viewers` count follows
// joins and leaves, the cap answers `busy`, and a viewer that vanishes
// without `bye` is reaped.
import assert from "node:assert/strict";
import { e2eTest, freshNames, launchBrowser, mqttRecorder, openViewer, startDaemon, startMosquitto, viewerState, waitForFrames, waitForState } from "./lib.mjs";

e2eTest("three viewers decode, the cap says busy, leaves and vanished viewers are counted out", async (cleanup) => {
  const broker = await startMosquitto(cleanup);
  const names = freshNames();
  const base = `${names.prefix}/${names.device}`;
  const recorder = await mqttRecorder(cleanup, broker.tcpUrl, [`${base}/#`]);
  const daemon = await startDaemon(cleanup, {
    brokerUrl: broker.tcpUrl, ...names, maxViewers: 3, width: 320, height: 240, bitrateKbps: 300, webrtc: "peer_timeout_secs = 5",
  });
  const viewersIs = (n) => recorder.waitLatest(`${base}/status`, (s) => s.online && s.viewers === n, `status viewers = ${n}`, 20000);
  await viewersIs(0);

  const browsers = [];
  const pages = [];
  for (let i = 0; i < 3; i++) {
    browsers.push(await launchBrowser(cleanup));
    pages.push(await openViewer(browsers[i], daemon, { brokerUrl: broker.wsUrl, ...names }));
  }
  for (const page of pages) await waitForFrames(page, 30, 40000);
  await viewersIs(3);

  const fourth = await openViewer(browsers[0], daemon, { brokerUrl: broker.wsUrl, ...names });
  const busy = await waitForState(fourth, "error", 15000);
  assert.equal(busy.error.code, "busy");
  assert.match(await fourth.textContent("#error"), /busy/);
  await fourth.close();

  await pages[0].click("#hangup");
  await viewersIs(2);

  const vanished = (await viewerState(pages[2])).sessionId;
  process.kill(browsers[2].pid, "SIGKILL");
  await viewersIs(1);
  const bye = await recorder.waitJson(`${base}/out/${vanished}`, (m) => m.type === "bye", "a bye to the vanished viewer", 5000);
  assert.match(bye.reason, /stopped responding/);

  const before = (await viewerState(pages[1])).stats.framesDecoded;
  await waitForFrames(pages[1], before + 30, 10000);
  assert.equal((await viewerState(pages[1])).state, "connected");
});
