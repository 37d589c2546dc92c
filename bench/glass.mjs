// Glass-to-glass latency on every presented frame of a viewer page: the
// test source's stamp (src/media/glass.rs) read in the page with the
// viewer's own reader (web/js/glass.js), against the frame's timing from
// requestVideoFrameCallback. Shared by the benchmarks that measure it.
import { glassToGlassMs } from "../web/js/glass.js";

/**
 * Starts reading the stamp of every frame `page` presents; resolves with
 * `stop()`, which ends the recording and resolves with the frames: each
 * `{ stamp, presented, display, presentation, received }`, the stamp (null
 * when unreadable), `presentedFrames`, and the frame's expected display,
 * presentation and last-packet-received times as wall-clock ms (the
 * metadata's performance.now() times plus performance.timeOrigin; received
 * is null where the browser does not tell it).
 */
export async function recordGlass(page) {
  await page.evaluate(async () => {
    const { blockSide, readStamp } = await import("/js/glass.js");
    const video = document.getElementById("video");
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const origin = performance.timeOrigin;
    const probe = { frames: [], on: true };
    const onFrame = (_, meta) => {
      if (!probe.on) return;
      const width = video.videoWidth;
      const rows = Math.min(blockSide(width), video.videoHeight);
      if (canvas.width !== width || canvas.height !== rows) {
        canvas.width = width;
        canvas.height = rows;
      }
      context.drawImage(video, 0, 0, width, rows, 0, 0, width, rows);
      probe.frames.push({
        stamp: readStamp(context.getImageData(0, 0, width, rows).data, width, rows),
        presented: meta.presentedFrames,
        display: origin + meta.expectedDisplayTime,
        presentation: origin + meta.presentationTime,
        received: meta.receiveTime === undefined ? null : origin + meta.receiveTime,
      });
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    window.peercamGlassProbe = probe;
  });
  return () => page.evaluate(() => {
    window.peercamGlassProbe.on = false;
    return window.peercamGlassProbe.frames;
  });
}

/**
 * What `frames` (from recordGlass) say: the latency of each stamped frame
 * to its expected display (`shown`), to its presentation (`presented`) and
 * capture → last packet received (`received`), in ms; how many frames the
 * page presented over the recording, how many callbacks it got, how many
 * had no readable stamp, and how many were `misread` and left out. A
 * callback that runs late can draw the next frame, not its own (the
 * compositor moves on without the page): that shows as a stamp later than
 * the frame's own last packet, or the same stamp as the next callback's.
 */
export function glassLatencies(frames) {
  const stamped = frames.filter((f) => f.stamp !== null);
  const misread = (f, i) => (f.received !== null && glassToGlassMs(f.stamp, f.received) === null) || f.stamp === stamped[i + 1]?.stamp;
  const read = stamped.filter((f, i) => !misread(f, i));
  const latencies = (at) => read.map((f) => (f[at] === null ? null : glassToGlassMs(f.stamp, f[at]))).filter((ms) => ms !== null);
  return {
    shown: latencies("display"),
    presented: latencies("presentation"),
    received: latencies("received"),
    presentedFrames: frames.length ? frames.at(-1).presented - frames[0].presented + 1 : 0,
    callbacks: frames.length,
    unreadable: frames.length - stamped.length,
    misread: stamped.length - read.length,
  };
}

/** `median X ms, p95 Y, min, max (n=N)` of latencies `xs` in ms; "none" for none. */
export function describeLatencies(xs) {
  if (xs.length === 0) return "none";
  const sorted = [...xs].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * q) - 1)];
  const median = sorted[Math.floor(sorted.length / 2)];
  return `median ${median.toFixed(1)} ms, p95 ${at(0.95).toFixed(1)}, min ${sorted[0].toFixed(1)}, max ${sorted.at(-1).toFixed(1)} (n=${xs.length})`;
}
