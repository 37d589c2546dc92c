// Sealed mode's cryptography (PROTOCOL.md "Sealed mode"), with WebCrypto
// only, so the same module runs in the page and in the node tests: the key
// string a pairing link carries, the key id, the two HKDF-derived AES-GCM
// keys, and sealing and opening payloads bound to their MQTT topic.

/** HKDF salt of every peercam v1 key. */
const HKDF_SALT = "peercam-v1";
/** HKDF info of the key the viewer seals with. */
const INFO_VIEWER_TO_DEVICE = "viewer-to-device";
/** HKDF info of the key the device seals with. */
const INFO_DEVICE_TO_VIEWER = "device-to-viewer";
const SECRET_BYTES = 32;
const KID_BYTES = 8;
const GCM_NONCE_BYTES = 12;
const GCM_TAG_BYTES = 16;
const SEALED_VERSION = 1;

const KID_SHAPE = /^[0-9a-f]{16}$/;
const BASE64URL_SHAPE = /^[A-Za-z0-9_-]*$/;

const ASK_FOR_A_NEW_LINK = "Ask for a new link with `peercam pair`.";

/** A key string or pairing link that cannot be used; `message` is for the person holding it. */
export class PairingError extends Error {
  constructor(message) {
    super(message);
    this.name = "PairingError";
  }
}

/** `bytes` as base64url without padding, the encoding of secrets, nonces and seals. */
export function toBase64url(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The bytes of base64url `text` (no padding), or null when it is not canonical base64url. */
export function fromBase64url(text) {
  if (typeof text !== "string" || !BASE64URL_SHAPE.test(text) || text.length % 4 === 1) return null;
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return toBase64url(bytes) === text ? bytes : null;
}

/** WebCrypto's `subtle`, or a PairingError saying why the page has none (it is not a secure context). */
function subtle() {
  const api = globalThis.crypto?.subtle;
  if (!api) {
    throw new PairingError("This page cannot do sealed calls: the browser only offers its cryptography to pages opened over https (or on localhost). Open the viewer over https.");
  }
  return api;
}

/** The key id of `secret`: the first 8 bytes of its SHA-256, as 16 lowercase hex digits. */
export async function keyId(secret) {
  const digest = new Uint8Array(await subtle().digest("SHA-256", secret));
  return [...digest.subarray(0, KID_BYTES)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Checks a key string `<kid>.<secret, base64url no padding>` from a pairing
 * link: `{ kid, secret }`, or a PairingError whose message says what is
 * wrong and what to do.
 */
export async function parseKeyString(text) {
  const parts = typeof text === "string" ? text.split(".") : [];
  if (parts.length !== 2 || !KID_SHAPE.test(parts[0])) {
    throw new PairingError(`This pairing link is damaged: its key is not a key id and a secret. ${ASK_FOR_A_NEW_LINK}`);
  }
  const [kid, encoded] = parts;
  const secret = fromBase64url(encoded);
  if (!secret || secret.length !== SECRET_BYTES) {
    throw new PairingError(`This pairing link is damaged: its secret is not ${SECRET_BYTES} bytes of base64url. ${ASK_FOR_A_NEW_LINK}`);
  }
  if ((await keyId(secret)) !== kid) {
    throw new PairingError(`This pairing link is damaged: its key does not match its key id. ${ASK_FOR_A_NEW_LINK}`);
  }
  return { kid, secret };
}

/** One direction's AES-256-GCM key, HKDF-SHA256-derived from `secret` with `info`. */
async function directionKey(secret, info, extractable) {
  const api = subtle();
  const base = await api.importKey("raw", secret, "HKDF", false, ["deriveKey"]);
  const encoder = new TextEncoder();
  return api.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: encoder.encode(HKDF_SALT), info: encoder.encode(info) },
    base,
    { name: "AES-GCM", length: 256 },
    extractable,
    ["encrypt", "decrypt"],
  );
}

/**
 * The sealing keys of a viewer's `secret`, as `{ kid, viewerToDevice,
 * deviceToViewer }`: each direction is a `{ kid, key }` for `seal` and
 * `open`. `extractable` lets the tests compare the raw keys.
 */
export async function deriveKeys(secret, { extractable = false } = {}) {
  const kid = await keyId(secret);
  const [toDevice, toViewer] = await Promise.all([
    directionKey(secret, INFO_VIEWER_TO_DEVICE, extractable),
    directionKey(secret, INFO_DEVICE_TO_VIEWER, extractable),
  ]);
  return { kid, viewerToDevice: { kid, key: toDevice }, deviceToViewer: { kid, key: toViewer } };
}

/** The sealing keys of a key string (see parseKeyString, whose PairingError it throws). */
export async function keysFromKeyString(text) {
  const { secret } = await parseKeyString(text);
  return deriveKeys(secret);
}

/**
 * The payload publishing `body` (an object, or its JSON text) sealed on
 * `topic` with `direction` (a `{ kid, key }`):
 * `{"v":1,"kid":…,"seal":…}`. The GCM nonce is random unless a test
 * passes `gcmNonce`.
 */
export async function seal(body, topic, direction, gcmNonce = crypto.getRandomValues(new Uint8Array(GCM_NONCE_BYTES))) {
  const plaintext = new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify(body));
  const sealed = new Uint8Array(await subtle().encrypt(
    { name: "AES-GCM", iv: gcmNonce, additionalData: new TextEncoder().encode(topic), tagLength: GCM_TAG_BYTES * 8 },
    direction.key,
    plaintext,
  ));
  const joined = new Uint8Array(gcmNonce.length + sealed.length);
  joined.set(gcmNonce);
  joined.set(sealed, gcmNonce.length);
  return JSON.stringify({ v: SEALED_VERSION, kid: direction.kid, seal: toBase64url(joined) });
}

/** Whether a parsed payload is a sealed one (it has a `seal`), whether or not it will open. */
export function isSealed(payload) {
  return payload !== null && typeof payload === "object" && "seal" in payload;
}

/**
 * The plaintext of a sealed payload (its JSON text, or the parsed object)
 * received on `topic`, opened with `direction` (a `{ kid, key }`); null
 * when it is not a v1 sealed payload for that key id, or it does not open
 * (another key, another topic, altered).
 */
export async function open(payload, topic, direction) {
  let sealed = payload;
  if (typeof payload === "string") {
    try {
      sealed = JSON.parse(payload);
    } catch {
      return null;
    }
  }
  if (!isSealed(sealed) || sealed.v !== SEALED_VERSION || sealed.kid !== direction.kid) return null;
  const bytes = fromBase64url(sealed.seal);
  if (!bytes || bytes.length < GCM_NONCE_BYTES + GCM_TAG_BYTES) return null;
  try {
    const plaintext = await subtle().decrypt(
      { name: "AES-GCM", iv: bytes.subarray(0, GCM_NONCE_BYTES), additionalData: new TextEncoder().encode(topic), tagLength: GCM_TAG_BYTES * 8 },
      direction.key,
      bytes.subarray(GCM_NONCE_BYTES),
    );
    return new TextDecoder("utf-8", { fatal: true }).decode(plaintext);
  } catch {
    return null;
  }
}
