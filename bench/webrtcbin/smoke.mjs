// Smoke check of the webrtcbin comparator against peercam's own web viewer
// in headless Chromium: a real Mosquitto, the comparator, web/ served by a
// tiny static server on loopback. Prints numbers; exits non-zero when a
// check fails. Needs the e2e test dependencies (`npm ci` in tests/e2e) and
// a release build (`cargo build --release` in bench/webrtcbin).
//
//   node bench/webrtcbin/smoke.mjs [--calls 5] [--width 1280 --height 720 --fps 30 --bitrate-kbps 2000]
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";
import { parseArgs } from "node:util";
import {
  freePort, freshNames, launchBrowser, mqttRecorder, newCleanup, runCleanup, startMosquitto, viewerState, waitFor, waitForFrames,
} from "../../tests/e2e/lib.mjs";

const { values: opts } = parseArgs({
  options: {
    calls: { type: "string", default: "5" },
    width: { type: "string", default: "1280" },
    height: { type: "string", default: "720" },
    fps: { type: "string", default: "30" },
    "bitrate-kbps": { type: "string", default: "2000" },
  },
});
const BIN = process.env.WEBRTCBIN_BIN ?? new URL("./target/release/peercam-webrtcbin", import.meta.url).pathname;
const WEB = new URL("../../web/", import.meta.url).pathname;
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".webmanifest": "application/manifest+json", ".svg": "image/svg+xml", ".png": "image/png" };

/** Serves web/ on a free loopback port. */
async function serveWeb(cleanup) {
  const port = await freePort();
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    try {
      const body = readFileSync(join(WEB, path.endsWith("/") ? `${path}index.html` : path));
      res.writeHead(200, { "content-type": TYPES[extname(path) || ".html"] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  cleanup.push(() => new Promise((r) => server.close(r)));
  return port;
}

/** Reads the glass stamp off the page's video: the latency in ms, or null. */
function glassLatency(page) {
  return page.evaluate(() => {
    const video = document.querySelector("#video");
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (!w || !h) return null;
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0);
    const now = Date.now();
    const b = Math.max(4, Math.floor(w / 40));
    const luma = (i) => {
      const p = ctx.getImageData(i * b + (b >> 1), b >> 1, 1, 1).data;
      return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
    };
    if (luma(0) < 180 || luma(1) > 70) return null;
    let ms = 0;
    for (let i = 0; i < 32; i++) ms = ms * 2 + (luma(2 + i) > 125 ? 1 : 0);
    return (now % 2 ** 32) - ms;
  });
}

const cleanup = newCleanup();
let failed = false;
try {
  const broker = await startMosquitto(cleanup);
  const names = freshNames();
  const base = `${names.prefix}/${names.device}`;
  const recorder = await mqttRecorder(cleanup, broker.tcpUrl, [`${base}/#`]);
  const proc = spawn(BIN, [
    "--broker", broker.tcpUrl, "--prefix", names.prefix, "--device", names.device,
    "--width", opts.width, "--height", opts.height, "--fps", opts.fps, "--bitrate-kbps", opts["bitrate-kbps"], "--max-viewers", "20",
  ], { stdio: ["ignore", "inherit", "pipe"] });
  let log = "";
  proc.stderr.on("data", (d) => { log += d; if (process.env.VERBOSE) process.stderr.write(d); });
  cleanup.push(async () => {
    if (proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  });
  const viewersIs = (n) => recorder.waitLatest(`${base}/status`, (s) => s.online && s.viewers === n, `status viewers = ${n}`, 20000);
  const status = await viewersIs(0);
  console.log("status:", JSON.stringify(status));

  const port = await serveWeb(cleanup);
  const url = `http://127.0.0.1:${port}/#${new URLSearchParams({ v: "1", b: broker.wsUrl, p: names.prefix, d: names.device })}`;
  const browser = await launchBrowser(cleanup);
  const open = async () => {
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error("viewer page error:", e.message));
    await page.goto(url);
    await page.waitForFunction(() => window.peercamViewer !== undefined, null, { timeout: 10000 });
    return page;
  };

  // One call at a time: time to first frame and the glass latency.
  const ttffs = [];
  for (let i = 0; i < Number(opts.calls); i++) {
    const page = await open();
    const s = await waitForFrames(page, 30, 30000);
    await waitFor("ttffMs", async () => (await viewerState(page)).stats.ttffMs !== null, 5000);
    const stats = (await viewerState(page)).stats;
    const glass = [];
    for (let k = 0; k < 5; k++) {
      const g = await glassLatency(page);
      if (g !== null) glass.push(g);
      await new Promise((r) => setTimeout(r, 200));
    }
    ttffs.push(stats.ttffMs);
    if (i === 0) {
      // What the device sent on out/S: the answer first, then host
      // candidates on loopback only, then end-of-candidates.
      const sent = recorder.json(`${base}/out/${s.sessionId}`).filter((m) => m.type !== "ice-servers");
      assert.equal(sent[0]?.type, "answer");
      const candidates = sent.filter((m) => m.type === "candidate");
      assert.ok(candidates.length >= 2, "a candidate and end-of-candidates");
      assert.equal(candidates.at(-1).candidate, "");
      for (const c of candidates.slice(0, -1)) assert.match(c.candidate, /^candidate:\S+ 1 UDP \d+ 127\.0\.0\.1 \d+ typ host/);
      console.log(`signaling: answer, then ${candidates.length - 1} loopback host candidate(s) and end-of-candidates`);
    }
    console.log(`call ${i + 1}: state ${s.state}, ttffMs ${stats.ttffMs}, connectMs ${stats.connectMs}, codec ${stats.codec}, ${stats.frameWidth ?? "?"}x${stats.frameHeight ?? "?"}, glass ms ${JSON.stringify(glass)}`);
    await page.click("#hangup");
    await viewersIs(0);
    await page.close();
  }
  console.log(`ttffMs: ${JSON.stringify(ttffs)}`);

  // Three at once; one leaves, the others go on.
  const pages = [await open(), await open(), await open()];
  for (const page of pages) await waitForFrames(page, 30, 30000);
  await viewersIs(3);
  console.log("three viewers decode; ttffMs", JSON.stringify(await Promise.all(pages.map(async (p) => (await viewerState(p)).stats.ttffMs))));
  const before = await Promise.all(pages.slice(1).map(async (p) => (await viewerState(p)).stats));
  await pages[0].click("#hangup");
  await viewersIs(2);
  await new Promise((r) => setTimeout(r, 3000));
  for (const [i, page] of pages.slice(1).entries()) {
    const s = await viewerState(page);
    assert.equal(s.state, "connected");
    const gained = s.stats.framesDecoded - before[i].framesDecoded;
    const frozen = (s.stats.freezeCount ?? 0) - (before[i].freezeCount ?? 0);
    console.log(`viewer ${i + 2} after viewer 1 left: +${gained} frames decoded in ~3 s, ${s.stats.fps ?? "?"} fps, freezes +${frozen}`);
    assert.ok(gained >= 60, `viewer ${i + 2} kept decoding`);
  }
  for (const page of pages.slice(1)) await page.click("#hangup");
  await viewersIs(0);

  // A clean stop says bye to the viewers left and publishes the offline status.
  const last = await open();
  await waitForFrames(last, 10, 30000);
  const lastSession = (await viewerState(last)).sessionId;
  proc.kill("SIGTERM");
  const bye = await recorder.waitJson(`${base}/out/${lastSession}`, (m) => m.type === "bye", "a bye on shutdown", 10000);
  console.log(`bye on shutdown: ${JSON.stringify(bye.reason)}`);
  await recorder.waitLatest(`${base}/status`, (s) => s.online === false, "offline status", 10000);
  await waitFor("the comparator to exit", () => proc.exitCode !== null, 10000);
  console.log(`stopped cleanly: exit ${proc.exitCode}, status offline`);
  if (process.env.VERBOSE) console.error(log);
} catch (e) {
  failed = true;
  console.error("FAILED:", e);
} finally {
  await runCleanup(cleanup);
}
process.exit(failed ? 1 : 0);
