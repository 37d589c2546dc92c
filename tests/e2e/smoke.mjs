#!/usr/bin/env node
// A short real run of the peercam at PEERCAM_BIN (e.g. an ARM build under
// qemu-user): test source, a local Mosquitto, one headless Chromium viewer
// that must decode 30 frames. Exits non-zero otherwise. Used by
// board/cross-build; not part of the regular suite.
import { freshNames, launchBrowser, newCleanup, openViewer, runCleanup, startDaemon, startMosquitto, waitFor, waitForFrames } from "./lib.mjs";

const cleanup = newCleanup();
let failed = false;
try {
  const broker = await startMosquitto(cleanup);
  const names = freshNames();
  const started = Date.now();
  const daemon = await startDaemon(cleanup, { brokerUrl: broker.tcpUrl, ...names, width: 320, height: 240, fps: 15, bitrateKbps: 300 });
  await waitFor("the daemon to reach the broker", () => /MQTT connected/.test(daemon.log), 60000);
  const online = Date.now() - started;
  const browser = await launchBrowser(cleanup);
  const page = await openViewer(browser, daemon, { brokerUrl: broker.wsUrl, ...names });
  const s = await waitForFrames(page, 30, 90000);
  console.log(`smoke: online after ${online} ms; viewer decoded ${s.stats.framesDecoded} frames ` +
    `${s.stats.frameWidth}x${s.stats.frameHeight} ${s.stats.codec}, first frame ${s.stats.ttffMs} ms after its offer`);
} catch (e) {
  failed = true;
  console.error(`smoke failed: ${e.message}\n${cleanup.logs.map((log) => log()).join("\n")}`);
} finally {
  await runCleanup(cleanup);
}
process.exit(failed ? 1 : 0);
