#!/usr/bin/env node
// Prints peercam's time to first frame (offer published → first decoded
// frame in headless Chromium) for the 1st and the Nth concurrent viewer,
// the daemon's own breakdown of each call's setup (its debug log: answer
// published, ICE connected, DTLS connected, first video frame sent), and
// the daemon's RSS and CPU% idle, with 1 and with N viewers, for the test
// source at 720p30, 2 Mb/s. A benchmark: it prints, never asserts.
//
// With --broker-nagle, Mosquitto keeps its default `set_tcp_nodelay false`
// (the README advises true), to show what that costs.
//
//   cargo build --release && node bench/ttff-and-load.mjs [--trials N] [--seconds S] [--viewers N] [--broker-nagle]
import { freshNames, launchBrowser, mqttRecorder, newCleanup, openViewer, runCleanup, startDaemon, startMosquitto, viewerState, waitFor, waitForFrames } from "../tests/e2e/lib.mjs";
import { load, option } from "./proc.mjs";

const TRIALS = option("trials", 5);
const SECONDS = option("seconds", 10);
const VIEWERS = option("viewers", 10);
const BROKER_NAGLE = process.argv.includes("--broker-nagle");
process.env.RUST_LOG = "info,str0m=warn,turn_client_proto=warn,stun_proto=warn,peercam::rtc::driver=debug,peercam::signal::manager=debug";
const STAGES = ["answer published", "ICE connected", "DTLS connected", "first video frame sent"];

/** Each stage's time after the offer (ms) over every call in `log`. */
function stages(log) {
  const found = Object.fromEntries(STAGES.map((s) => [s, []]));
  for (const line of log.split("\n")) {
    const m = line.match(/session \S+: (.+) at \+([\d.]+) ms/);
    if (m && found[m[1]]) found[m[1]].push(Number(m[2]));
  }
  return found;
}
const BIN = process.env.PEERCAM_BIN ?? new URL("../target/release/peercam", import.meta.url).pathname;

/** Offer → first frame, and offer → connected, in ms. */
async function firstFrame(page) {
  await waitForFrames(page, 1, 30000);
  const stats = await waitFor("time to first frame", async () => {
    const s = (await viewerState(page)).stats;
    return s.ttffMs !== null && s.connectMs !== null ? s : null;
  }, 5000);
  connects.push(stats.connectMs);
  return stats.ttffMs;
}
const connects = [];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)];
const fmt = (xs) => `median ${median(xs)} ms, p95 ${p95(xs)} ms (${xs.join(", ")})`;

const cleanup = newCleanup();
try {
  const broker = await startMosquitto(cleanup, { tcpNoDelay: !BROKER_NAGLE });
  const names = freshNames();
  const base = `${names.prefix}/${names.device}`;
  const recorder = await mqttRecorder(cleanup, broker.tcpUrl, [`${base}/status`]);
  const daemon = await startDaemon(cleanup, {
    bin: BIN, brokerUrl: broker.tcpUrl, ...names, maxViewers: VIEWERS, width: 1280, height: 720, fps: 30, bitrateKbps: 2000,
  });
  const viewers = (n) => recorder.waitLatest(`${base}/status`, (s) => s.online && s.viewers === n, `viewers = ${n}`, 20000);
  await viewers(0);
  const pid = daemon.proc.pid;
  const browser = await launchBrowser(cleanup);
  const link = { brokerUrl: broker.wsUrl, ...names };

  const idle = await load(pid, SECONDS);

  const first = [];
  for (let i = 0; i < TRIALS; i++) {
    const page = await openViewer(browser, daemon, link);
    first.push(await firstFrame(page));
    await page.close();
    await viewers(0);
  }

  const pages = [await openViewer(browser, daemon, link)];
  await firstFrame(pages[0]);
  await viewers(1);
  const one = await load(pid, SECONDS);

  const nth = [];
  for (let i = 0; i < TRIALS; i++) {
    while (pages.length < VIEWERS - 1) {
      pages.push(await openViewer(browser, daemon, link));
      await firstFrame(pages.at(-1));
    }
    const page = await openViewer(browser, daemon, link);
    nth.push(await firstFrame(page));
    pages.push(page);
    if (i < TRIALS - 1) {
      await pages.pop().close();
      await viewers(VIEWERS - 1);
    }
  }
  await viewers(VIEWERS);
  const many = await load(pid, SECONDS);
  const decoded = await Promise.all(pages.map(async (p) => (await viewerState(p)).stats));

  console.log(`peercam ${BIN}`);
  console.log(`source: test pattern 1280x720 @ 30 fps, x264 2000 kb/s; ${SECONDS} s per load sample; ${TRIALS} trials per ttff`);
  console.log(`time to first frame, 1st viewer: ${fmt(first)}`);
  console.log(`time to first frame, ${VIEWERS}th viewer: ${fmt(nth)}`);
  for (const [stage, times] of Object.entries(stages(daemon.log))) {
    if (times.length) console.log(`daemon: offer → ${stage}: median ${median(times).toFixed(1)} ms, p95 ${p95(times).toFixed(1)} ms over ${times.length} calls`);
  }
  console.log(`offer → connected, every viewer above: ${fmt(connects)}`);
  console.log(`idle (0 viewers):  RSS ${idle.rssMiB.toFixed(1)} MiB, CPU ${idle.cpuPercent.toFixed(1)} %`);
  console.log(`1 viewer:          RSS ${one.rssMiB.toFixed(1)} MiB, CPU ${one.cpuPercent.toFixed(1)} %`);
  console.log(`${VIEWERS} viewers:        RSS ${many.rssMiB.toFixed(1)} MiB, CPU ${many.cpuPercent.toFixed(1)} %`);
  console.log(`viewers at the end: ${decoded.map((s) => `${s.frameWidth}x${s.frameHeight} ${Math.round(s.fps)} fps ${s.bitrateKbps} kb/s`).join("; ")}`);
} finally {
  await runCleanup(cleanup);
}
