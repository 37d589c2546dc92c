// Mosquitto killed and restarted mid-call: the running call keeps
// streaming, the device comes back online, and a new viewer can join.
import assert from "node:assert/strict";
import { e2eTest, freshNames, launchBrowser, mqttRecorder, openViewer, startDaemon, startMosquitto, viewerState, waitForFrames } from "./lib.mjs";

e2eTest("a running call survives a broker restart and new viewers join after it", async (cleanup) => {
  const broker = await startMosquitto(cleanup);
  const names = freshNames();
  const base = `${names.prefix}/${names.device}`;
  const daemon = await startDaemon(cleanup, { brokerUrl: broker.tcpUrl, ...names, width: 320, height: 240, bitrateKbps: 300 });
  const browser = await launchBrowser(cleanup);
  const watching = await openViewer(browser, daemon, { brokerUrl: broker.wsUrl, ...names });
  await waitForFrames(watching, 30, 40000);

  await broker.kill();
  const during = (await viewerState(watching)).stats.framesDecoded;
  await waitForFrames(watching, during + 90, 15000);
  assert.match(daemon.log, /MQTT connection to \S+ lost/, "the daemon noticed the broker is gone");

  await broker.start();
  const recorder = await mqttRecorder(cleanup, broker.tcpUrl, [`${base}/status`]);
  const status = await recorder.waitLatest(`${base}/status`, (s) => s.online === true, "the device back online", 20000);
  assert.equal(status.viewers, 1, "the call that kept running is still counted");

  const joining = await openViewer(browser, daemon, { brokerUrl: broker.wsUrl, ...names });
  await waitForFrames(joining, 30, 40000);
  const after = (await viewerState(watching)).stats.framesDecoded;
  await waitForFrames(watching, after + 30, 10000);
  assert.equal((await viewerState(watching)).state, "connected");
  await recorder.waitLatest(`${base}/status`, (s) => s.online && s.viewers === 2, "status viewers = 2", 10000);
});
