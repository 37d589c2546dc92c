// The signaling contract of PROTOCOL.md (plain mode) as pure functions:
// topic names, payload encoding and decoding, candidate messages. No
// browser state: the unit tests import this file as is.

/** The `v` of every payload this viewer sends and accepts. */
export const PROTOCOL_VERSION = 1;

/** Session message types whose byte-identical repeat is an MQTT duplicate, ignored. */
export const DEDUPLICATED_TYPES = ["offer", "answer", "candidate"];

/** Random bytes in a session id: 16 bytes are 22 base64url characters, within `[A-Za-z0-9_-]{16,64}`. */
const SESSION_ID_BYTES = 16;

const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Whether `id` is a valid device id (`[A-Za-z0-9_-]{1,64}`). */
export function isDeviceId(id) {
  return typeof id === "string" && DEVICE_ID.test(id);
}

/** The filter matching every device's retained status under `prefix`. */
export function statusFilter(prefix) {
  return `${prefix}/+/status`;
}

/** The filter matching every device's events (rings, talk floor changes) under `prefix`. */
export function eventFilter(prefix) {
  return `${prefix}/+/event`;
}

/** The device id of a `leaf` topic (`status`, `event`) under `prefix`, or null when `topic` is not one. */
function deviceIdOfTopic(prefix, topic, leaf) {
  if (!topic.startsWith(prefix + "/") || !topic.endsWith(`/${leaf}`)) return null;
  const id = topic.slice(prefix.length + 1, -(leaf.length + 1));
  return DEVICE_ID.test(id) ? id : null;
}

/** The two topics of one session: `in` (viewer → device) and `out` (device → viewer). */
export function sessionTopics(prefix, deviceId, sessionId) {
  const base = `${prefix}/${deviceId}`;
  return { in: `${base}/in/${sessionId}`, out: `${base}/out/${sessionId}` };
}

/** A fresh random session id; `fillRandom` is `crypto.getRandomValues` unless a test passes its own. */
export function randomSessionId(fillRandom = (bytes) => crypto.getRandomValues(bytes)) {
  const bytes = fillRandom(new Uint8Array(SESSION_ID_BYTES));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The payload's text: MQTT hands the browser bytes, tests may pass a string. */
function payloadText(payload) {
  return typeof payload === "string" ? payload : new TextDecoder().decode(payload);
}

/** The JSON object a payload holds, or null for anything else (not JSON, an array, a number). */
export function parseObject(payload) {
  try {
    const value = JSON.parse(payloadText(payload));
    return value && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** The payload publishing `body`: the body with this viewer's protocol version. */
export function encodeBody(body) {
  return JSON.stringify({ v: PROTOCOL_VERSION, ...body });
}

/**
 * A session message from the device as `{ message, text }`, or null when it
 * is not one this viewer acts on (not an object, another `v`, no `type`).
 * `text` is kept so duplicates can be recognised byte for byte.
 */
export function decodeSessionMessage(payload) {
  const text = payloadText(payload);
  const message = parseObject(text);
  if (!message || message.v !== PROTOCOL_VERSION || typeof message.type !== "string") return null;
  return { message, text };
}

/**
 * What a message on `topic` says about a device: `{ id, device }`, with
 * `device` null when its retained status was cleared (it is gone); null
 * when the message is not a v1 status under `prefix` (ignored). A device is
 * `online` only when its status says so.
 */
export function statusUpdate(prefix, topic, payload) {
  const id = deviceIdOfTopic(prefix, topic, "status");
  if (id === null) return null;
  if (payload.length === 0) return { id, device: null };
  const status = parseObject(payload);
  if (!status || status.v !== PROTOCOL_VERSION) return null;
  return { id, device: { id, ...status, online: status.online === true } };
}

/**
 * The `candidate` body for a local ICE candidate; `null` is the
 * end-of-candidates, sent with the first m-line's mid (`firstMid`) and,
 * when known, the `usernameFragment` of the ICE generation it ends.
 */
export function candidateBody(candidate, firstMid, usernameFragment) {
  if (!candidate) {
    const end = { type: "candidate", candidate: "", sdpMid: firstMid ?? "0", sdpMLineIndex: 0 };
    return usernameFragment ? { ...end, usernameFragment } : end;
  }
  return {
    type: "candidate",
    candidate: candidate.candidate,
    sdpMid: candidate.sdpMid,
    sdpMLineIndex: candidate.sdpMLineIndex,
    usernameFragment: candidate.usernameFragment,
  };
}

/**
 * The `RTCIceCandidateInit` for a device's `candidate` message. One with
 * neither `sdpMid` nor `sdpMLineIndex` applies to the first m-line.
 */
export function candidateInit(message, firstMid) {
  return {
    candidate: message.candidate ?? "",
    sdpMid: message.sdpMid ?? (message.sdpMLineIndex == null ? firstMid : undefined),
    sdpMLineIndex: message.sdpMLineIndex ?? (message.sdpMid == null ? 0 : undefined),
    usernameFragment: message.usernameFragment ?? undefined,
  };
}

/** The ICE username fragment (`a=ice-ufrag:`) of a session description, or null. */
export function iceUfrag(sdp) {
  return /^a=ice-ufrag:(\S+)/m.exec(sdp ?? "")?.[1] ?? null;
}

/** The ICE servers an `ice-servers` reply carries, or `fallback` when it carries no list. */
export function iceServersFrom(servers, fallback) {
  return Array.isArray(servers) ? servers : fallback;
}

/**
 * A device event on `topic` as `{ id, event }`, or null when it is no v1
 * event object under `prefix` (ignored). Events there are unsealed, for
 * integrations: anyone on the broker can publish one.
 */
export function eventUpdate(prefix, topic, payload) {
  const id = deviceIdOfTopic(prefix, topic, "event");
  if (id === null) return null;
  const event = parseObject(payload);
  if (!event || event.v !== PROTOCOL_VERSION || typeof event.type !== "string") return null;
  return { id, event };
}
