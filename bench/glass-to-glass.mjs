#!/usr/bin/env node
// Prints peercam's glass-to-glass latency (the test source's capture of a
// frame → that frame shown by headless Chromium) on every presented frame,
// for one viewer alone, then for it and more viewers at once (default one
// more), for the test source at 720p30, 2 Mb/s. A benchmark: it prints,
// never asserts.
//
//   cargo build --release && node bench/glass-to-glass.mjs [--seconds S] [--viewers N]
//     [--width W --height H --fps F]
//
// The daemon stamps each frame's wall-clock capture time into its picture
// (src/media/glass.rs); the page reads it back off each presented frame
// (bench/glass.mjs, with the viewer's web/js/glass.js) and takes it from
// the frame's expected display time, requestVideoFrameCallback's
// performance.now() time moved to the wall clock by performance.timeOrigin.
// Daemon and browser share this machine's clock.
import { availableParallelism, loadavg } from "node:os";
import { freshNames, launchBrowser, newCleanup, openViewer, runCleanup, startDaemon, startMosquitto, waitForFrames } from "../tests/e2e/lib.mjs";
import { describeLatencies, glassLatencies, recordGlass } from "./glass.mjs";
import { option } from "./proc.mjs";

const SECONDS = option("seconds", 20);
const VIEWERS = option("viewers", 2);
const WIDTH = option("width", 1280);
const HEIGHT = option("height", 720);
const FPS = option("fps", 30);
const BIN = process.env.PEERCAM_BIN ?? new URL("../target/release/peercam", import.meta.url).pathname;

const loadBefore = loadavg()[0];
const cleanup = newCleanup();
try {
  const broker = await startMosquitto(cleanup);
  const names = freshNames();
  const daemon = await startDaemon(cleanup, {
    bin: BIN, brokerUrl: broker.tcpUrl, ...names, maxViewers: Math.max(4, VIEWERS), width: WIDTH, height: HEIGHT, fps: FPS, bitrateKbps: 2000,
  });
  const browser = await launchBrowser(cleanup);
  const link = { brokerUrl: broker.wsUrl, ...names };

  /** Opens one more viewer and waits for its video. */
  const addViewer = async () => {
    const page = await openViewer(browser, daemon, link);
    await waitForFrames(page, 30, 40000);
    return page;
  };

  /** Records every presented frame of `pages` for SECONDS; each page's frames and the overlay's median at the end. */
  const record = async (pages) => {
    const stops = await Promise.all(pages.map(recordGlass));
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const frames = await Promise.all(stops.map((stop) => stop()));
    const overlays = await Promise.all(pages.map((page) => page.evaluate(() => window.peercamViewer.glass.medianMs)));
    return frames.map((f, i) => ({ ...glassLatencies(f), overlay: overlays[i] }));
  };

  const pages = [await addViewer()];
  const alone = await record(pages);
  while (pages.length < VIEWERS) pages.push(await addViewer());
  const together = VIEWERS > 1 ? await record(pages) : [];
  const clockSkew = await pages[0].evaluate(() => performance.timeOrigin + performance.now() - Date.now());

  console.log(`peercam ${BIN}`);
  console.log(`source: test pattern ${WIDTH}x${HEIGHT} @ ${FPS} fps, x264 2000 kb/s; viewers in one headless Chromium; ${SECONDS} s of every presented frame per run`);
  const report = (label, g) => {
    console.log(`${label}: capture → shown (expectedDisplayTime): ${describeLatencies(g.shown)}`);
    console.log(`${label}: capture → presented (presentationTime): ${describeLatencies(g.presented)}`);
    console.log(`${label}: capture → last packet received (receiveTime): ${describeLatencies(g.received)}`);
    console.log(`${label}: ${g.callbacks} callbacks for ${g.presentedFrames} presented frames, ${g.unreadable} without a readable stamp, ${g.misread} misread (a newer frame drawn) left out;`
      + ` the overlay's median at the end: ${g.overlay === null ? "none" : `${Math.round(g.overlay)} ms`}`);
  };
  report("1 viewer alone", alone[0]);
  together.forEach((g, i) => report(`viewer ${i + 1} of ${VIEWERS} at once`, g));
  console.log(`machine load (1 min average): ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after, on ${availableParallelism()} cores`);
  console.log(`page wall clock (performance.timeOrigin + now()) − Date.now(): ${clockSkew.toFixed(1)} ms`);
} finally {
  await runCleanup(cleanup);
}
