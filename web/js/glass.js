// The glass stamp (src/media/glass.rs): the daemon's `test` source draws the
// wall-clock time of each frame's capture into the picture, so a viewer on
// the same machine reads it back from a decoded frame and measures
// glass-to-glass latency (capture → encode → network → decode → screen).
// One row of 34 square blocks from the top-left corner, side
// max(4, floor(width / 40)) px: white, black (the calibration), then the 32
// bits of the time in ms since the Unix epoch modulo 2^32, most significant
// first, white for 1. Pure: pixels and clocks come in.

/** Blocks in the row: two for calibration, 32 for the time. */
export const BLOCKS = 34;
/** Least luma difference between the white and the black block for a stamp. */
const MIN_CONTRAST = 100;
/**
 * How far from the threshold, as a fraction of white − black, every block
 * must be: a stamp's blocks are all clearly white or black, a real
 * picture's seldom are.
 */
const DECISIVE = 0.2;
/** The stamp's time wraps at 2^32 ms (about 50 days). */
const WRAP = 2 ** 32;
/** Longer than this is no latency but a picture without a stamp (or another clock). */
export const MAX_GLASS_MS = 10000;
/** The overlay's estimate is the median over this much of the latest samples. */
const GLASS_WINDOW_MS = 2000;

/** Side of a block in pixels for a picture `width` wide (as the daemon draws it). */
export function blockSide(width) {
  return Math.max(4, Math.floor(width / 40));
}

/**
 * Mean luma (0.299 R + 0.587 G + 0.114 B) of the middle half of block
 * `block` (each way): its edges blur into the neighbours in compression
 * and chroma subsampling, its middle keeps the block's own level.
 */
function blockLuma(rgba, width, side, block) {
  const inset = Math.floor(side / 4);
  let sum = 0;
  let count = 0;
  for (let y = inset; y < side - inset; y++) {
    for (let x = block * side + inset; x < (block + 1) * side - inset; x++) {
      const i = (y * width + x) * 4;
      sum += 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
      count += 1;
    }
  }
  return sum / count;
}

/**
 * The stamp (capture time, ms since the epoch modulo 2^32) in RGBA pixels
 * `width` wide and `height` high from the frame's top-left corner, as
 * `getImageData` gives them for a frame drawn at its native size (`width`
 * is the frame's). Null when there is no stamp: the row does not fit, the
 * calibration blocks lack contrast, or some block is neither white nor black.
 */
export function readStamp(rgba, width, height) {
  const side = blockSide(width);
  if (BLOCKS * side > width || side > height || rgba.length < width * side * 4) return null;
  const luma = Array.from({ length: BLOCKS }, (_, block) => blockLuma(rgba, width, side, block));
  const [white, black] = luma;
  const contrast = white - black;
  if (contrast < MIN_CONTRAST) return null;
  const threshold = (white + black) / 2;
  if (luma.some((l) => Math.abs(l - threshold) < DECISIVE * contrast)) return null;
  return luma.slice(2).reduce((value, l) => value * 2 + (l > threshold ? 1 : 0), 0);
}

/**
 * Glass-to-glass latency in ms of a frame stamped `stampMs` and shown at
 * wall-clock `nowMs` (ms since the epoch): the difference modulo 2^32, or
 * null without a stamp or when it exceeds MAX_GLASS_MS (then the "stamp" is
 * garbage from a picture without one, or the clocks disagree).
 */
export function glassToGlassMs(stampMs, nowMs) {
  if (stampMs === null) return null;
  const ms = ((((nowMs % WRAP) - stampMs) % WRAP) + WRAP) % WRAP;
  return ms > MAX_GLASS_MS ? null : ms;
}

/** The middle value of `values` (the mean of the two middle ones for an even count); null for none. */
export function median(values) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The glass-to-glass samples of the last `windowMs` (wall-clock ms): what
 * the overlay's estimate, a median, is taken over. A frame without a stamp
 * adds nothing, so the estimate disappears once stamps stop.
 */
export class GlassWindow {
  /** An empty window `windowMs` long. */
  constructor(windowMs = GLASS_WINDOW_MS) {
    this.windowMs = windowMs;
    this.samples = [];
  }

  /** Adds the latency `ms` of a frame shown at `at` (null: no stamp), dropping samples older than the window. */
  add(at, ms) {
    if (ms !== null) this.samples.push({ at, ms });
    this.samples = this.samples.filter((s) => at - s.at <= this.windowMs);
  }

  /** The median latency of the window ending at `now`; null when it holds no sample. */
  median(now) {
    return median(this.samples.filter((s) => now - s.at <= this.windowMs).map((s) => s.ms));
  }

  /** The latest sample's latency, null before any. */
  get latestMs() {
    return this.samples.at(-1)?.ms ?? null;
  }
}
