// Reading the glass stamp from decoded frames: synthetic RGBA pictures
// stamped as the daemon's test source does (src/media/glass.rs), blurred
// and noisy as after compression, and pictures without a stamp.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BLOCKS, GlassWindow, MAX_GLASS_MS, blockSide, glassToGlassMs, median, readStamp } from "../js/glass.js";

/** A deterministic pseudo-random source (mulberry32), so failures repeat. */
function random(seed) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** A colourful test-card-like RGBA picture: vertical bars under a diagonal gradient. */
function picture(width, height) {
  const rgba = new Uint8ClampedArray(width * height * 4);
  const bars = [[255, 255, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255], [255, 0, 0], [0, 0, 255], [128, 128, 128]];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bar = bars[Math.floor((x * bars.length) / width)];
      const shade = (x + y) / (width + height);
      const i = (y * width + x) * 4;
      for (let c = 0; c < 3; c++) rgba[i + c] = bar[c] * (0.4 + 0.6 * shade);
      rgba[i + 3] = 255;
    }
  }
  return rgba;
}

/**
 * Draws the stamp `millis` as the daemon does in luma (235 white, 16 black,
 * neutral chroma), converted to RGB as a browser does for video range.
 */
function stamp(rgba, width, millis) {
  const side = blockSide(width);
  const grey = (luma) => Math.round(((luma - 16) * 255) / 219);
  for (let block = 0; block < BLOCKS; block++) {
    const white = block === 0 || (block > 1 && Math.floor(millis / 2 ** (BLOCKS - 1 - block)) % 2 === 1);
    const level = grey(white ? 235 : 16);
    for (let y = 0; y < side; y++) {
      for (let x = block * side; x < (block + 1) * side; x++) rgba.fill(level, (y * width + x) * 4, (y * width + x) * 4 + 3);
    }
  }
  return rgba;
}

/** A box blur of `radius` over the colour channels, as compression and scaling soften edges. */
function blur(rgba, width, height, radius) {
  const out = new Uint8ClampedArray(rgba);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        let count = 0;
        for (let dy = -radius; dy <= radius; dy++) {
          for (let dx = -radius; dx <= radius; dx++) {
            const yy = y + dy;
            const xx = x + dx;
            if (yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
            sum += rgba[(yy * width + xx) * 4 + c];
            count += 1;
          }
        }
        out[(y * width + x) * 4 + c] = sum / count;
      }
    }
  }
  return out;
}

/** Adds uniform noise of ±`amount` to every colour channel. */
function noise(rgba, amount, next) {
  for (let i = 0; i < rgba.length; i++) if (i % 4 !== 3) rgba[i] += Math.round((next() * 2 - 1) * amount);
  return rgba;
}

/** The top `rows` rows of a picture `width` wide, as the viewer reads only the strip with the stamp. */
function strip(rgba, width, rows) {
  return rgba.slice(0, width * rows * 4);
}

const STAMPS = [0, 1, 0x80000001, 2 ** 32 - 1, 1764615000, 0x55555555, 0xaaaaaaaa];

test("a block's side is a fortieth of the width, at least 4 px", () => {
  assert.equal(blockSide(1280), 32);
  assert.equal(blockSide(640), 16);
  assert.equal(blockSide(1000), 25);
  assert.equal(blockSide(160), 4);
  assert.equal(blockSide(100), 4);
});

test("a stamp reads back at every size, from the whole frame and from the top strip", () => {
  for (const [width, height] of [[1920, 1080], [1280, 720], [1000, 562], [640, 360], [320, 240], [176, 144], [160, 120], [136, 4]]) {
    for (const millis of STAMPS) {
      const frame = stamp(picture(width, height), width, millis);
      assert.equal(readStamp(frame, width, height), millis, `${width}x${height}`);
      assert.equal(readStamp(strip(frame, width, blockSide(width)), width, blockSide(width)), millis, `${width}x${height}, strip`);
    }
  }
});

test("a stamp survives blurred edges and noise, as after encoding and decoding", () => {
  const next = random(11);
  for (const [width, height, radius] of [[1280, 720, 3], [640, 360, 2], [320, 240, 1], [160, 120, 1]]) {
    const rows = blockSide(width) + radius + 1;
    for (const millis of STAMPS) {
      const frame = noise(blur(stamp(picture(width, rows), width, millis), width, rows, radius), 20, next);
      assert.equal(readStamp(frame, width, rows), millis, `${width}x${height}, blur ${radius}`);
    }
  }
});

test("a stamp read in dim or washed-out colours still calibrates on its own white and black", () => {
  const width = 640;
  const frame = stamp(picture(width, 16), width, 0x12345678);
  const dim = frame.map((v, i) => (i % 4 === 3 ? v : 40 + v * 0.5));
  assert.equal(readStamp(dim, width, 16), 0x12345678);
});

test("a picture without a stamp reads as none", () => {
  const next = random(7);
  const width = 640;
  const height = 360;
  assert.equal(readStamp(picture(width, height), width, height), null, "a test card");
  assert.equal(readStamp(new Uint8ClampedArray(width * height * 4).fill(128), width, height), null, "flat grey");
  assert.equal(readStamp(noise(new Uint8ClampedArray(width * height * 4).fill(128), 127, next), width, height), null, "noise");
  // White then black where the calibration blocks are, but the test card after them.
  const card = picture(width, height);
  const corner = stamp(picture(width, height), width, 0);
  const side = blockSide(width);
  for (let y = 0; y < side; y++) corner.set(card.subarray((y * width + 2 * side) * 4, (y + 1) * width * 4), (y * width + 2 * side) * 4);
  assert.equal(readStamp(corner, width, height), null, "calibration-like corner over a picture");
});

test("a stamp that does not fit reads as none", () => {
  assert.equal(readStamp(stamp(picture(200, 200), 200, 5).slice(0, 200 * 3 * 4), 200, 3), null, "fewer rows than a block");
  assert.equal(readStamp(picture(120, 90), 120, 90), null, "narrower than 34 blocks of 4 px");
  assert.equal(readStamp(new Uint8ClampedArray(16), 640, 360), null, "fewer pixels than the size says");
});

test("glass-to-glass is the shown time minus the stamp, modulo 2^32", () => {
  const now = 1764615123456.25;
  const stamped = (now - 95) % 2 ** 32;
  assert.equal(glassToGlassMs(Math.floor(stamped), now), 95.25);
  assert.equal(glassToGlassMs(2 ** 32 - 10, 2 ** 32 * 411 + 20), 30, "across the wrap");
  assert.equal(glassToGlassMs(0, 2 ** 32 * 411), 0);
});

test("glass-to-glass beyond 10 s, or before the stamp, is no stamp", () => {
  const now = 1764615123456;
  assert.equal(glassToGlassMs(now % 2 ** 32 - MAX_GLASS_MS, now), MAX_GLASS_MS);
  assert.equal(glassToGlassMs(now % 2 ** 32 - MAX_GLASS_MS - 1, now), null);
  assert.equal(glassToGlassMs(now % 2 ** 32 + 5, now), null, "a stamp from the future");
  assert.equal(glassToGlassMs(null, now), null);
});

test("the median of an odd and an even count, and of none", () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 10]), 3.5);
  assert.equal(median([]), null);
});

test("the window keeps the last 2 s of samples, and frames without a stamp add nothing", () => {
  const glass = new GlassWindow();
  assert.equal(glass.median(0), null);
  assert.equal(glass.latestMs, null);
  glass.add(1000, 90);
  glass.add(1250, 300);
  glass.add(1500, 100);
  glass.add(1750, null);
  assert.equal(glass.median(1750), 100);
  assert.equal(glass.latestMs, 100);
  assert.deepEqual(glass.samples.map((s) => s.ms), [90, 300, 100]);
  glass.add(3100, 80);
  assert.deepEqual(glass.samples.map((s) => s.ms), [300, 100, 80], "the sample at 1000 aged out");
  assert.equal(glass.median(3100), 100);
  assert.equal(glass.median(5200), null, "stamps stopped: no estimate");
  glass.add(5600, null);
  assert.deepEqual(glass.samples, []);
  assert.equal(glass.latestMs, null);
});
