#!/usr/bin/env node
// Prints peercam's mouth-to-ear audio latency on loopback, both ways, the
// talk-back jitter buffer's added delay, and the daemon's CPU% with one
// viewer listening, then listening and talking. A benchmark: it prints,
// never asserts.
//
//   cargo build --release && node bench/audio-latency.mjs [--bursts N] [--seconds S]
//     [--width W --height H --fps F]   (a small video isolates the cost of audio)
//
// Device → browser: the daemon's microphone is a FIFO written at real time
// (each 20 ms period once it has passed, as a sound card delivers it) with
// a 1 kHz burst every 1.5 s; "mouth" is when a burst's first sample was
// spoken, "ear" when a WebAudio analyser on the received track in Chromium
// first hears it (after the browser's jitter buffer, before its sound card).
// Browser → device: the page's microphone is a WebAudio oscillator whose
// gain the bench opens at a recorded time ("mouth"); "ear" is when the
// daemon's talk-back player hands the first frame with the burst to ALSA
// (its debug log line). A real sound card adds its own buffer at each end
// (here the device's is 1-4 periods of 20 ms).
import { alsaBench, freshNames, launchBrowser, newCleanup, openViewer, runCleanup, startDaemon, startMosquitto, viewerState, waitFor, waitForFrames } from "../tests/e2e/lib.mjs";
import { load, option } from "./proc.mjs";

const BURSTS = option("bursts", 10);
const SECONDS = option("seconds", 10);
const WIDTH = option("width", 1280);
const HEIGHT = option("height", 720);
const FPS = option("fps", 30);
const BIN = process.env.PEERCAM_BIN ?? new URL("../target/release/peercam", import.meta.url).pathname;
const PERIOD_MS = 1500;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One period of the microphone: a 100 ms 1 kHz burst, then silence. */
function burstPeriod() {
  const samples = (48000 * PERIOD_MS) / 1000;
  const pcm = Buffer.alloc(samples * 2);
  for (let i = 0; i < 4800; i++) pcm.writeInt16LE(Math.round(16000 * Math.sin((2 * Math.PI * 1000 * i) / 48000)), i * 2);
  return pcm;
}

const stats = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return `median ${median.toFixed(0)} ms, min ${sorted[0].toFixed(0)}, max ${sorted.at(-1).toFixed(0)} (n=${xs.length})`;
};

const cleanup = newCleanup();
try {
  const bench = alsaBench(cleanup, { input: burstPeriod(), live: true, extraAudio: "jitter_ms = 60" });
  const broker = await startMosquitto(cleanup);
  const names = freshNames();
  process.env.RUST_LOG = "info,str0m=warn,peercam::media::audio::playback=debug";
  const daemon = await startDaemon(cleanup, {
    bin: BIN, brokerUrl: broker.tcpUrl, ...names, width: WIDTH, height: HEIGHT, fps: FPS, bitrateKbps: 2000, audio: bench,
  });
  const browser = await launchBrowser(cleanup);
  const context = await browser.newContext();
  await context.addInitScript(() => {
    // The page's microphone: a 1 kHz tone behind a gain the bench opens.
    navigator.mediaDevices.getUserMedia = async () => {
      const ctx = new AudioContext();
      const osc = ctx.createOscillator();
      osc.frequency.value = 1000;
      const gain = ctx.createGain();
      gain.gain.value = 0;
      const dest = ctx.createMediaStreamDestination();
      osc.connect(gain).connect(dest);
      osc.start();
      window.benchMic = { ctx, gain };
      return dest.stream;
    };
  });
  const page = await openViewer(context, daemon, { brokerUrl: broker.wsUrl, ...names });
  await waitForFrames(page, 30, 40000);
  await waitFor("audio", async () => (await viewerState(page)).stats.audioPacketsReceived > 50, 20000);

  // Device → browser: onsets heard by an analyser on the received track.
  await page.evaluate(() => {
    const track = document.getElementById("video").srcObject.getAudioTracks()[0];
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 256;
    ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    let loud = false;
    window.benchOnsets = [];
    setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      const rms = Math.sqrt(buf.reduce((sum, x) => sum + x * x, 0) / buf.length);
      if (!loud && rms > 0.05) {
        loud = true;
        window.benchOnsets.push(performance.timeOrigin + performance.now());
      } else if (loud && rms < 0.01) {
        loud = false;
      }
    }, 2);
  });
  const pid = daemon.proc.pid;
  const listening = await load(pid, SECONDS);
  const onsets = await page.evaluate(() => window.benchOnsets);
  const toBrowser = onsets.map((heard) => {
    const burst = Math.floor((heard - bench.micStartedAt) / PERIOD_MS);
    return heard - (bench.micStartedAt + burst * PERIOD_MS);
  });

  // Browser → device: the viewer takes the floor; the bench opens its mic.
  await page.evaluate(() => window.peercamViewer.setTalk(true));
  await waitFor("the floor", () => page.evaluate(() => window.peercamViewer.talk.holding), 10000);
  await sleep(500);
  const spoken = [];
  const talking = load(pid, SECONDS);
  for (let i = 0; i < BURSTS; i++) {
    spoken.push(await page.evaluate(() => {
      const { ctx, gain } = window.benchMic;
      gain.gain.setValueAtTime(0.5, ctx.currentTime);
      setTimeout(() => gain.gain.setValueAtTime(0, ctx.currentTime), 100);
      return performance.timeOrigin + performance.now();
    }));
    await sleep(PERIOD_MS);
  }
  const talkingLoad = await talking;
  await page.evaluate(() => window.peercamViewer.setTalk(false));
  await sleep(1500);
  const heard = [...daemon.log.matchAll(/^(\S+Z) DEBUG .*talk-back: voice from/gm)].map((m) => Date.parse(m[1]));
  const toDevice = spoken.map((at) => heard.find((h) => h >= at && h < at + PERIOD_MS)).map((h, i) => h - spoken[i]).filter((x) => Number.isFinite(x));
  const reserve = daemon.log.match(/jitter buffer held ([\d.]+\w+) on average/g) ?? [];
  const browserJitter = (await viewerState(page)).stats.jitterBufferDelayMs;

  console.log(`peercam ${BIN}; video ${WIDTH}x${HEIGHT} @ ${FPS} fps 2000 kb/s, audio Opus 32 kb/s, talk-back jitter_ms = 60`);
  console.log(`device → browser mouth-to-ear: ${stats(toBrowser)}; Chromium's own jitter buffer ${browserJitter} ms of it`);
  console.log(`browser → device mouth-to-ALSA: ${stats(toDevice)}`);
  console.log(`talk-back jitter buffer: ${reserve.join("; ") || "no talk-back spurt logged"}`);
  console.log(`daemon CPU (one core = 100 %): listening ${listening.cpuPercent.toFixed(1)} %, listening + talking back ${talkingLoad.cpuPercent.toFixed(1)} %; RSS ${talkingLoad.rssMiB.toFixed(1)} MiB`);
} finally {
  await runCleanup(cleanup);
}
