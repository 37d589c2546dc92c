// Paired devices in a fake storage: remembered, replaced on re-pairing, ordered by use,
// forgotten, never with the broker password, and robust to storage that misbehaves.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseLink } from "../js/link.js";
import { linkFromPairing, PAIRED_STORAGE_KEY, PairedDevices, pairedLabel, pairedLine } from "../js/paired.js";

const KEY_A = "630dcd2966c43366.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const KEY_B = "0123456789abcdef.BBECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/** A Map-backed `localStorage`. */
function fakeStorage() {
  const items = new Map();
  return {
    items,
    getItem: (name) => (items.has(name) ? items.get(name) : null),
    setItem: (name, value) => items.set(name, String(value)),
  };
}

const front = { broker: "wss://b:8884", prefix: "peercam", device: "front", key: KEY_A, name: "Alice's phone", username: "alice" };
const back = { broker: "ws://b:8083", prefix: "home", device: "back", key: KEY_B, name: "Alice's phone", username: null };

test("no storage item: nothing paired", () => {
  const paired = new PairedDevices(fakeStorage());
  assert.deepEqual(paired.list(), []);
  assert.equal(paired.last(), null);
  assert.equal(paired.find("peercam", "front"), null);
});

test("a remembered pairing is stored, without any password, and found again by prefix and device", () => {
  const storage = fakeStorage();
  new PairedDevices(storage).remember({ ...front, password: "hunter2" });
  assert.ok(!storage.items.get(PAIRED_STORAGE_KEY).includes("hunter2"));
  const paired = new PairedDevices(storage);
  assert.deepEqual(paired.find("peercam", "front"), { ...front, label: null });
  assert.equal(paired.find("other", "front"), null, "the same id under another prefix is another device");
});

test("the most recently paired or used device comes first", () => {
  const paired = new PairedDevices(fakeStorage());
  paired.remember(front);
  paired.remember(back);
  assert.equal(paired.last().device, "back");
  assert.equal(paired.use("peercam", "front", "Front door"), true);
  assert.deepEqual(paired.list().map((e) => e.device), ["front", "back"]);
  assert.equal(paired.last().label, "Front door");
  assert.equal(paired.use("peercam", "front"), true);
  assert.equal(paired.last().label, "Front door", "a use without a label keeps the one known");
  assert.equal(paired.use("peercam", "nope"), false);
});

test("pairing the same device again replaces its entry", () => {
  const paired = new PairedDevices(fakeStorage());
  paired.remember(front);
  paired.remember(back);
  paired.remember({ ...front, key: KEY_B, name: "Bob's phone" });
  assert.equal(paired.list().length, 2);
  assert.deepEqual(paired.last(), { ...front, key: KEY_B, name: "Bob's phone", label: null });
});

test("forgetting a device removes it and its key", () => {
  const storage = fakeStorage();
  const paired = new PairedDevices(storage);
  paired.remember(front);
  paired.remember(back);
  assert.equal(paired.forget("peercam", "front"), true);
  assert.deepEqual(paired.list().map((e) => e.device), ["back"]);
  assert.ok(!storage.items.get(PAIRED_STORAGE_KEY).includes(KEY_A));
  assert.equal(paired.forget("peercam", "front"), false);
});

test("garbage in storage is dropped, entry by entry", () => {
  const storage = fakeStorage();
  storage.setItem(PAIRED_STORAGE_KEY, JSON.stringify([null, 3, { ...front, device: "a/b" }, { ...front, key: 7 }, front]));
  assert.deepEqual(new PairedDevices(storage).list(), [front]);
  storage.setItem(PAIRED_STORAGE_KEY, "not json");
  assert.deepEqual(new PairedDevices(storage).list(), []);
  storage.setItem(PAIRED_STORAGE_KEY, '{"an":"object"}');
  assert.deepEqual(new PairedDevices(storage).list(), []);
});

test("storage that throws keeps the list in memory", (t) => {
  t.mock.method(console, "warn", () => {});
  const broken = { getItem() { throw new Error("SecurityError"); }, setItem() { throw new Error("QuotaExceededError"); } };
  const paired = new PairedDevices(broken);
  paired.remember(front);
  assert.equal(paired.find("peercam", "front").key, KEY_A);
  assert.equal(paired.forget("peercam", "front"), true);
  assert.deepEqual(paired.list(), []);
});

test("a paired device opens as a link that calls at once, in the shape parseLink reads", () => {
  const link = linkFromPairing({ ...front, label: null });
  const parsed = parseLink("#v=1&b=wss%3A%2F%2Fb%3A8884&p=peercam&d=front&u=alice&n=Alice%27s%20phone");
  assert.deepEqual(link, parsed);
  assert.equal(link.auto, true);
  assert.equal(link.password, null);
});

test("a paired device is listed by its name (or id) and this viewer's name", () => {
  assert.equal(pairedLabel({ ...front, label: "Front door" }), "Front door (front) · as Alice's phone");
  assert.equal(pairedLabel({ ...front, label: null, name: "" }), "front");
});

test("storage that keeps nothing (no item, writes lost) keeps the list in memory", () => {
  const forgetful = { getItem: () => null, setItem() {} };
  const paired = new PairedDevices(forgetful);
  paired.remember(front);
  assert.equal(paired.last().device, "front");
});

test("a paired doorbell's line says whether it is online, when the page can tell", () => {
  const entry = { device: "front", label: "Front door", name: "alice" };
  assert.equal(pairedLine(entry, "online"), "Front door (front) · as alice · online");
  assert.equal(pairedLine(entry, "offline"), "Front door (front) · as alice · offline");
  assert.equal(pairedLine(entry, null), "Front door (front) · as alice");
});
