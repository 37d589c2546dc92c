// The web viewer, served by the daemon, shows the test pattern from a real
// Mosquitto-signaled call in headless Chromium.
import assert from "node:assert/strict";
import { test } from "node:test";
import { readFileSync } from "node:fs";
import { e2eTest, freshNames, launchBrowser, openViewer, startDaemon, startMosquitto, viewerUrl, waitForFrames, waitFor, waitForState } from "./lib.mjs";

e2eTest("the URL the daemon prints opens a viewer that decodes the configured H.264 stream", async (cleanup) => {
  const broker = await startMosquitto(cleanup);
  const names = freshNames();
  const daemon = await startDaemon(cleanup, { brokerUrl: broker.tcpUrl, viewerBrokerUrl: broker.wsUrl, ...names, width: 640, height: 360 });
  const url = await waitFor("the printed viewer URL", () => daemon.log.match(/http:\/\/127\.0\.0\.1:\d+\/#\S+/)?.[0], 5000);
  const fragment = new URLSearchParams(new URL(url).hash.slice(1));
  assert.equal(fragment.get("b"), broker.wsUrl);
  assert.equal(fragment.get("d"), names.device);

  const browser = await launchBrowser(cleanup);
  const page = await openViewer(browser, daemon, names, url);
  const s = await waitForFrames(page, 60, 40000);
  assert.equal(s.state, "connected");
  assert.equal(s.stats.frameWidth, 640);
  assert.equal(s.stats.frameHeight, 360);
  assert.equal(s.stats.codec, "H264");
  assert.ok(s.stats.ttffMs > 0, `time to first frame recorded: ${s.stats.ttffMs}`);
  const device = s.devices.find((d) => d.id === names.device);
  assert.equal(device.online, true);
  assert.deepEqual(device.video, ["H264"]);

  await waitFor("the overlay to show the resolution", async () => (await page.textContent("#stats")).includes("640×360"), 5000);
  // The test source's glass stamp survives encoding and decoding: the
  // viewer reads it and the overlay shows glass-to-glass (no limit on it).
  const glass = await waitForGlass(page);
  assert.ok(glass.latestMs >= 0, `a glass-to-glass sample: ${JSON.stringify(glass)}`);
  await waitFor("the overlay to show glass-to-glass", async () => /glass-to-glass \d+ ms/.test(await page.textContent("#stats")), 5000);
  await page.click("#hangup");
  await waitForState(page, "ended", 5000);

  await page.click("#call");
  await waitForFrames(page, 30, 40000);
  await waitForGlass(page);
  await daemon.stop("SIGTERM");
  const ended = await waitForState(page, "ended", 10000);
  assert.match(ended.error.message, /shutting down/);
  await waitFor("the device listed offline", async () => (await page.getAttribute(`#devices li[data-id="${names.device}"]`, "class"))?.includes("offline"), 10000);
});

/** Waits for the viewer's first glass-to-glass sample of the call on screen; resolves with `window.peercamViewer.glass`. */
function waitForGlass(page) {
  return waitFor("a glass stamp read off the video", async () => {
    const glass = await page.evaluate(() => window.peercamViewer.glass);
    return glass.latestMs !== null ? glass : null;
  }, 5000);
}

e2eTest("no media path: the viewer says so instead of waiting forever", async (cleanup) => {
  const broker = await startMosquitto(cleanup);
  const names = freshNames();
  const daemon = await startDaemon(cleanup, { brokerUrl: broker.tcpUrl, ...names, width: 160, height: 120, bitrateKbps: 100, webrtc: "connect_timeout_secs = 3" });
  const browser = await launchBrowser(cleanup);
  const page = await browser.newPage();
  // A browser that may only use TURN, and has none: no candidate pair can work.
  await page.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = function (config) {
      return new Native({ ...config, iceTransportPolicy: "relay" });
    };
  });
  await page.goto(viewerUrl(daemon, { brokerUrl: broker.wsUrl, ...names }));
  const s = await waitForState(page, "error", 30000);
  assert.equal(s.error.code, "no-connectivity");
  assert.match(await page.textContent("#error"), /TURN/);
});

test("the vendored mqtt.js is the pinned release", () => {
  const pinned = JSON.parse(readFileSync(new URL("../../web/package.json", import.meta.url))).dependencies.mqtt;
  const installed = JSON.parse(readFileSync(new URL("./node_modules/mqtt/package.json", import.meta.url))).version;
  assert.equal(installed, pinned, "tests/e2e and web/ pin the same mqtt.js");
  const vendored = readFileSync(new URL("../../web/vendor/mqtt.min.js", import.meta.url));
  const release = readFileSync(new URL("./node_modules/mqtt/dist/mqtt.min.js", import.meta.url));
  assert.ok(vendored.equals(release), "web/vendor/mqtt.min.js is byte-identical to mqtt@" + pinned);
});
