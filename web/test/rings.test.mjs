// The recent rings: each press kept once, newest first, at most RING_KEEP, kept across page loads.
import assert from "node:assert/strict";
import { test } from "node:test";
import { RING_KEEP, RINGS_STORAGE_KEY, RingLog, addRing, ringFrom, ringLine } from "../js/rings.js";

const front = { id: "front", name: "Front door" };
const at = (s) => Date.parse(`2026-11-23T19:00:${String(s).padStart(2, "0")}Z`);

function memoryStorage() {
  const items = new Map();
  return { items, getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, String(v)) };
}

test("a ring event becomes who rang and when; a ring without a valid time is timed on arrival", () => {
  assert.deepEqual(ringFrom("home", front, { v: 1, type: "ring", at: "2026-11-23T19:00:05Z" }, 1), { prefix: "home", device: "front", name: "Front door", at: at(5) });
  assert.equal(ringFrom("home", { id: "back" }, { type: "ring", at: "yesterday" }, 1234).at, 1234);
  assert.equal(ringFrom("home", { id: "back" }, { type: "ring" }, 1234).name, "back", "no name: the id");
});

test("the same ring heard twice (on P/D/event and in the call) is kept once", () => {
  const ring = ringFrom("home", front, { at: "2026-11-23T19:00:05Z" }, 0);
  const once = addRing([], ring);
  assert.equal(once.added, true);
  const twice = addRing(once.rings, { ...ring });
  assert.equal(twice.added, false);
  assert.equal(twice.rings.length, 1);
  assert.equal(addRing(once.rings, { ...ring, device: "back" }).added, true, "another doorbell at the same second is another ring");
});

test("rings are newest first and only the last RING_KEEP are kept", () => {
  let rings = [];
  for (let s = 0; s < RING_KEEP + 3; s++) rings = addRing(rings, ringFrom("home", front, { at: new Date(at(s)).toISOString() }, 0)).rings;
  assert.equal(rings.length, RING_KEEP);
  assert.deepEqual(rings.map((r) => r.at), Array.from({ length: RING_KEEP }, (_, i) => at(RING_KEEP + 2 - i)));
  const late = addRing(rings, ringFrom("home", front, { at: new Date(at(0)).toISOString() }, 0));
  assert.equal(late.added, false, "older than every kept ring: not kept");
});

test("a ring's line says who and the local time", () => {
  const when = new Date(2026, 10, 23, 7, 8, 9).getTime();
  assert.equal(ringLine({ name: "Front door", at: when }), "Front door · 07:08:09");
});

test("the log keeps rings in storage, drops what is not a ring, and works in memory where storage refuses", () => {
  const storage = memoryStorage();
  const log = new RingLog(storage);
  const ring = ringFrom("home", front, { at: "2026-11-23T19:00:05Z" }, 0);
  assert.equal(log.add(ring), true);
  assert.equal(log.add({ ...ring }), false);
  assert.deepEqual(new RingLog(storage).list(), [ring], "another page reads it back");
  storage.setItem(RINGS_STORAGE_KEY, JSON.stringify([ring, { prefix: "home", device: "../x", at: 1 }, { device: "front" }, null]));
  assert.deepEqual(new RingLog(storage).list(), [ring]);
  storage.setItem(RINGS_STORAGE_KEY, "not json");
  assert.deepEqual(new RingLog(storage).list(), []);

  const refusing = new RingLog({ getItem() { throw new Error("denied"); }, setItem() { throw new Error("denied"); } });
  assert.equal(refusing.add(ring), true);
  assert.deepEqual(refusing.list(), [ring]);
});
