// When each doorbell was last seen online and when it went offline, kept
// in the browser's storage, so "offline" can say since when: exactly when
// this page saw the status change, else when this phone last saw it
// online. Pure apart from `storage`, like paired.js.

import { whenText } from "./when.js";

/** The storage item: `{ "prefix/device": { lastSeen, offlineSince } }` (ms since the epoch, or null). */
export const PRESENCE_STORAGE_KEY = "peercam.presence";

/** Devices remembered, the most recently seen kept: more than anyone pairs, and it bounds the item. */
export const PRESENCE_KEEP = 20;

const key = (prefix, device) => `${prefix}/${device}`;

/** Whether `record`, read back from storage, holds two times or nulls. */
function isRecord(record) {
  const time = (t) => t === null || (typeof t === "number" && Number.isFinite(t));
  return record !== null && typeof record === "object" && time(record.lastSeen) && time(record.offlineSince);
}

/** Devices' presence in `storage`; in memory only where the storage refuses. */
export class Presence {
  constructor(storage) {
    this.storage = storage;
    this.memory = {};
    /** Devices this page has seen online: their going offline is seen as it happens. */
    this.watched = new Set();
  }

  /** Every record, by `prefix/device`. */
  all() {
    try {
      const stored = JSON.parse(this.storage.getItem(PRESENCE_STORAGE_KEY) ?? "null");
      if (stored && typeof stored === "object" && !Array.isArray(stored)) {
        this.memory = Object.fromEntries(Object.entries(stored).filter(([, record]) => isRecord(record)));
      }
    } catch (e) {
      console.warn("peercam: presence could not be read", e);
    }
    return { ...this.memory };
  }

  /** What is known of `prefix`/`device`: `{ lastSeen, offlineSince }`, or null. */
  get(prefix, device) {
    const record = this.all()[key(prefix, device)];
    return record ? { ...record } : null;
  }

  /**
   * Notes the device's status at `now` (ms): online, it is seen; offline
   * after this page saw it online, it went offline now. An offline status
   * the page never saw change (the retained one at start) keeps what was
   * known. Returns the record.
   */
  update(prefix, device, online, now) {
    const id = key(prefix, device);
    const records = this.all();
    const before = records[id] ?? { lastSeen: null, offlineSince: null };
    let record = before;
    if (online) {
      this.watched.add(id);
      record = { lastSeen: now, offlineSince: null };
    } else if (this.watched.delete(id)) {
      record = { lastSeen: now, offlineSince: now };
    }
    if (record !== before) this.save({ ...records, [id]: record });
    return { ...record };
  }

  /** Keeps `records`, the PRESENCE_KEEP most recently seen, in memory and, if it lets us, in storage. */
  save(records) {
    const kept = Object.entries(records).sort(([, a], [, b]) => (b.lastSeen ?? 0) - (a.lastSeen ?? 0)).slice(0, PRESENCE_KEEP);
    this.memory = Object.fromEntries(kept);
    try {
      this.storage.setItem(PRESENCE_STORAGE_KEY, JSON.stringify(this.memory));
    } catch (e) {
      console.warn("peercam: presence could not be saved", e);
    }
  }
}

/**
 * What the page says of an offline doorbell `name` with `record` (from
 * Presence, or null), seen from `now` (a Date): since when it is offline
 * when that is known, else when this phone last saw it.
 */
export function offlineText(name, record, now) {
  if (record?.offlineSince) return `${name} has been offline since ${whenText(new Date(record.offlineSince), now).replace(/^(at|on) /, "")}.`;
  if (record?.lastSeen) return `${name} is offline. This phone last saw it online ${whenText(new Date(record.lastSeen), now)}.`;
  return `${name} is offline.`;
}
