// The doorbell's recent rings, listed on the page and kept in the
// browser's storage so a phone opening the page later still sees who rang.
// A ring reaches the page twice while a call runs (on `P/D/event` and,
// sealed, inside the call), so each is kept once. Pure apart from
// `storage` (`localStorage` in the page, any `getItem`/`setItem` object in
// tests), like paired.js.

import { isDeviceId } from "./protocol.js";
import { clock } from "./when.js";

/** How many rings are kept: a screen's worth on a phone, and more than anyone misses in one absence. */
export const RING_KEEP = 10;

/** The storage item holding the rings, as JSON, newest first. */
export const RINGS_STORAGE_KEY = "peercam.rings";

/** Whether `ring`, read back from storage, is one this page can show. */
function isRing(ring) {
  return ring !== null && typeof ring === "object" && typeof ring.prefix === "string" && isDeviceId(ring.device)
    && typeof ring.at === "number" && Number.isFinite(ring.at);
}

/**
 * The ring a device `event` (`{ type: "ring", at }`) from `device` under
 * `prefix` makes, timed `receivedAt` (ms) when its `at` is no valid time:
 * `{ prefix, device, name, at }` with `at` in ms since the epoch.
 */
export function ringFrom(prefix, device, event, receivedAt) {
  const at = Date.parse(event?.at);
  return { prefix, device: device.id, name: device.name || device.id, at: Number.isNaN(at) ? receivedAt : at };
}

/** Whether `a` and `b` are the same press of the same doorbell. */
function sameRing(a, b) {
  return a.prefix === b.prefix && a.device === b.device && a.at === b.at;
}

/**
 * `ring` added to `rings` (newest first): `{ rings, added }`, `added`
 * false when it was already there. At most RING_KEEP are kept.
 */
export function addRing(rings, ring) {
  if (rings.some((other) => sameRing(other, ring))) return { rings, added: false };
  const next = [ring, ...rings].sort((a, b) => b.at - a.at).slice(0, RING_KEEP);
  return { rings: next, added: next.includes(ring) };
}

/** A ring's line in the list: who and when, in local time. */
export function ringLine(ring) {
  return `${ring.name} · ${clock(new Date(ring.at))}`;
}

/** The rings kept in `storage`; in memory only where the storage refuses. */
export class RingLog {
  constructor(storage) {
    this.storage = storage;
    this.memory = [];
  }

  /** Every kept ring, newest first. */
  list() {
    try {
      const stored = JSON.parse(this.storage.getItem(RINGS_STORAGE_KEY) ?? "null");
      if (Array.isArray(stored)) this.memory = stored.filter(isRing).slice(0, RING_KEEP);
    } catch (e) {
      console.warn("peercam: rings could not be read", e);
    }
    return this.memory.map((ring) => ({ ...ring }));
  }

  /** Keeps `ring`; false when it was already kept (the same ring heard twice). */
  add(ring) {
    const { rings, added } = addRing(this.list(), ring);
    if (!added) return false;
    this.memory = rings;
    try {
      this.storage.setItem(RINGS_STORAGE_KEY, JSON.stringify(rings));
    } catch (e) {
      console.warn("peercam: rings could not be saved", e);
    }
    return true;
  }
}
