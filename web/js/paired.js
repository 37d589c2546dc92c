// The doorbells this viewer is paired with, kept in the browser's storage
// so that a phone opening the bare page goes straight to the last one it
// used. An entry is what a pairing link carried, minus the broker password,
// which is never stored: `{ broker, prefix, device, key, name, username,
// label }` (`name` is this viewer's name on the device, `label` the
// device's own name once seen). A device is one prefix and device id;
// pairing it again replaces its entry. Pure apart from `storage`, which is
// `localStorage` in the page and any `getItem`/`setItem` object in tests.

import { isDeviceId } from "./protocol.js";

/** The storage item holding the list, as JSON, most recently used first. */
export const PAIRED_STORAGE_KEY = "peercam.paired";

/** Whether `entry`, read back from storage, has what a call needs. */
function isEntry(entry) {
  return entry !== null && typeof entry === "object"
    && typeof entry.broker === "string" && typeof entry.prefix === "string" && isDeviceId(entry.device) && typeof entry.key === "string";
}

/** Whether `entry` is the device `prefix`/`device`. */
function isDevice(entry, prefix, device) {
  return entry.prefix === prefix && entry.device === device;
}

/**
 * The paired devices in `storage`. Storage that refuses to be read or
 * written (private browsing, quota, a disabled store) leaves the list in
 * memory for this page's life.
 */
export class PairedDevices {
  constructor(storage) {
    this.storage = storage;
    this.memory = [];
  }

  /** Every paired device, most recently used first. */
  list() {
    try {
      const text = this.storage.getItem(PAIRED_STORAGE_KEY);
      const stored = text === null ? null : JSON.parse(text);
      if (Array.isArray(stored)) this.memory = stored.filter(isEntry);
    } catch (e) {
      console.warn("peercam: paired devices could not be read", e);
    }
    return this.memory.map((entry) => ({ ...entry }));
  }

  /** Keeps `entries` in memory and, if it lets us, in storage. */
  save(entries) {
    this.memory = entries;
    try {
      this.storage.setItem(PAIRED_STORAGE_KEY, JSON.stringify(entries));
    } catch (e) {
      console.warn("peercam: paired devices could not be saved", e);
    }
  }

  /** The pairing of device `device` under `prefix`, or null. */
  find(prefix, device) {
    return this.list().find((entry) => isDevice(entry, prefix, device)) ?? null;
  }

  /** The most recently used paired device, or null when there is none. */
  last() {
    return this.list()[0] ?? null;
  }

  /** Keeps a pairing (see link.js `pairingFromLink`) as the most recent, replacing an earlier one of the same device. */
  remember(pairing) {
    const { broker, prefix, device, key, name, username } = pairing;
    const entry = { broker, prefix, device, key, name: name ?? "", username: username ?? null, label: null };
    this.save([entry, ...this.list().filter((other) => !isDevice(other, prefix, device))]);
  }

  /** Marks a paired device as the most recently used, with the device's `label` when known; false when it is not paired. */
  use(prefix, device, label = null) {
    const entries = this.list();
    const entry = entries.find((other) => isDevice(other, prefix, device));
    if (!entry) return false;
    const used = { ...entry, label: label ?? entry.label };
    this.save([used, ...entries.filter((other) => other !== entry)]);
    return true;
  }

  /** Forgets a paired device and its key; false when it was not paired. */
  forget(prefix, device) {
    const entries = this.list();
    const rest = entries.filter((entry) => !isDevice(entry, prefix, device));
    if (rest.length === entries.length) return false;
    this.save(rest);
    return true;
  }
}

/** The link (as link.js `parseLink` reads one) that opens a paired device: it calls at once; no password. */
export function linkFromPairing(entry) {
  return {
    broker: entry.broker,
    prefix: entry.prefix,
    device: entry.device,
    username: entry.username,
    password: null,
    key: null,
    name: entry.name,
    auto: true,
    relay: false,
  };
}

/** What the list of paired devices shows for `entry`: the device's name (or id) and this viewer's name on it. */
export function pairedLabel(entry) {
  const device = entry.label ? `${entry.label} (${entry.device})` : entry.device;
  return entry.name ? `${device} · as ${entry.name}` : device;
}

/** The words for a paired doorbell's presence: "online", "offline", or null when this page cannot tell (another broker, not seen yet). */
const PRESENCE_WORDS = { online: "online", offline: "offline" };

/** A paired doorbell's line in the list: its label (pairedLabel) and, when known, whether it is online. */
export function pairedLine(entry, presence) {
  const word = PRESENCE_WORDS[presence];
  return word ? `${pairedLabel(entry)} · ${word}` : pairedLabel(entry);
}
