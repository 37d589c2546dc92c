// Since when a doorbell is offline: seen going offline, or last seen online, across page loads.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PRESENCE_KEEP, PRESENCE_STORAGE_KEY, Presence, offlineText } from "../js/presence.js";

function memoryStorage() {
  const items = new Map();
  return { items, getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, String(v)) };
}

const t = (h, m) => new Date(2026, 10, 23, h, m, 0).getTime();

test("a doorbell seen online, then offline, went offline then", () => {
  const presence = new Presence(memoryStorage());
  assert.deepEqual(presence.update("home", "front", true, t(9, 0)), { lastSeen: t(9, 0), offlineSince: null });
  assert.deepEqual(presence.update("home", "front", false, t(9, 5)), { lastSeen: t(9, 5), offlineSince: t(9, 5) });
  assert.deepEqual(presence.update("home", "front", false, t(9, 7)), { lastSeen: t(9, 5), offlineSince: t(9, 5) }, "a repeated offline status changes nothing");
});

test("a page that finds it offline says when this phone last saw it, from storage", () => {
  const storage = memoryStorage();
  new Presence(storage).update("home", "front", true, t(9, 0));
  const later = new Presence(storage);
  assert.deepEqual(later.update("home", "front", false, t(18, 0)), { lastSeen: t(9, 0), offlineSince: null }, "it went offline unseen");
  assert.deepEqual(later.get("home", "front"), { lastSeen: t(9, 0), offlineSince: null });
  assert.equal(later.get("home", "back"), null);
  assert.deepEqual(new Presence(storage).update("home", "back", false, t(18, 0)), { lastSeen: null, offlineSince: null }, "never seen");
});

test("storage keeps the most recently seen devices only, and bad records are dropped", () => {
  const storage = memoryStorage();
  const presence = new Presence(storage);
  for (let i = 0; i < PRESENCE_KEEP + 2; i++) presence.update("home", `cam${i}`, true, t(9, i));
  const kept = Object.keys(JSON.parse(storage.getItem(PRESENCE_STORAGE_KEY)));
  assert.equal(kept.length, PRESENCE_KEEP);
  assert.ok(!kept.includes("home/cam0") && kept.includes(`home/cam${PRESENCE_KEEP + 1}`));
  storage.setItem(PRESENCE_STORAGE_KEY, JSON.stringify({ "home/a": { lastSeen: "noon", offlineSince: null }, "home/b": { lastSeen: 5, offlineSince: null } }));
  assert.deepEqual(Object.keys(new Presence(storage).all()), ["home/b"]);
});

test("storage that refuses leaves presence in memory", () => {
  const presence = new Presence({ getItem() { throw new Error("denied"); }, setItem() { throw new Error("denied"); } });
  presence.update("home", "front", true, t(9, 0));
  assert.deepEqual(presence.get("home", "front"), { lastSeen: t(9, 0), offlineSince: null });
});

test("offline text says since when, or when last seen, in local time", () => {
  const now = new Date(2026, 10, 23, 20, 0, 0);
  assert.equal(offlineText("Front door", { lastSeen: t(9, 5), offlineSince: t(9, 5) }, now), "Front door has been offline since 09:05:00.");
  assert.equal(offlineText("Front door", { lastSeen: t(9, 5) - 86400000, offlineSince: t(9, 5) - 86400000 }, now), "Front door has been offline since yesterday at 09:05:00.");
  assert.equal(offlineText("Front door", { lastSeen: new Date(2026, 10, 1, 9, 5).getTime(), offlineSince: new Date(2026, 10, 1, 9, 5).getTime() }, now), "Front door has been offline since 2026-11-01 at 09:05:00.");
  assert.equal(offlineText("Front door", { lastSeen: t(9, 5), offlineSince: null }, now), "Front door is offline. This phone last saw it online at 09:05:00.");
  assert.equal(offlineText("Front door", null, now), "Front door is offline.");
});
