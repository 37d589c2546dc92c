// Sealed mode's cryptography against every fixed vector of docs/protocol-vectors.json:
// the key id, both HKDF keys, the offer and the answer byte for byte, the
// cases that must not open, and the pairing link.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { parseLink } from "../js/link.js";
import { PairingError, deriveKeys, fromBase64url, isSealed, keyId, keysFromKeyString, open, parseKeyString, seal, toBase64url } from "../js/seal.js";

const vectors = JSON.parse(await readFile(new URL("../../docs/protocol-vectors.json", import.meta.url), "utf8"));

const hex = (text) => Uint8Array.from(text.match(/../g), (byte) => parseInt(byte, 16));
const toHex = (bytes) => Buffer.from(bytes).toString("hex");
const secret = hex(vectors.secret_hex);
const keys = await deriveKeys(secret, { extractable: true });
const directions = { k_viewer_to_device_hex: keys.viewerToDevice, k_device_to_viewer_hex: keys.deviceToViewer };

test("the secret's base64url and its key id", async () => {
  assert.equal(toBase64url(secret), vectors.secret_b64url);
  assert.deepEqual(fromBase64url(vectors.secret_b64url), secret);
  assert.equal(await keyId(secret), vectors.kid);
  assert.equal(keys.kid, vectors.kid);
  assert.equal(`${keys.kid}.${toBase64url(secret)}`, vectors.key_string);
});

test("both HKDF keys, byte for byte", async () => {
  const raw = async (direction) => toHex(new Uint8Array(await crypto.subtle.exportKey("raw", direction.key)));
  assert.equal(await raw(keys.viewerToDevice), vectors.k_viewer_to_device_hex);
  assert.equal(await raw(keys.deviceToViewer), vectors.k_device_to_viewer_hex);
});

test("the status nonce is base64url of its bytes", () => {
  assert.equal(toHex(fromBase64url(vectors.status_nonce)), vectors.status_nonce_hex);
});

for (const name of ["offer", "answer"]) {
  const vector = vectors[name];

  test(`the ${name} is sealed byte for byte with its fixed GCM nonce`, async () => {
    const payload = await seal(vector.plaintext, vector.topic, directions[vector.key], hex(vector.gcm_nonce_hex));
    assert.equal(payload, vector.payload);
    const sealed = fromBase64url(JSON.parse(payload).seal);
    assert.equal(JSON.parse(payload).seal, vector.seal);
    assert.equal(toHex(sealed.subarray(0, 12)), vector.gcm_nonce_hex);
    assert.equal(toHex(sealed.subarray(12, -16)), vector.ciphertext_hex);
    assert.equal(toHex(sealed.subarray(-16)), vector.tag_hex);
    assert.equal(toHex(new TextEncoder().encode(vector.plaintext)), vector.plaintext_hex);
  });

  test(`the ${name}'s body, sealed as an object, is the same payload`, async () => {
    const body = JSON.parse(vector.plaintext);
    assert.equal(await seal(body, vector.topic, directions[vector.key], hex(vector.gcm_nonce_hex)), vector.payload);
  });

  test(`the ${name} opens under its topic with its key`, async () => {
    assert.equal(await open(vector.payload, vector.aad_utf8, directions[vector.key]), vector.plaintext);
    assert.equal(await open(JSON.parse(vector.payload), vector.topic, directions[vector.key]), vector.plaintext, "a parsed payload opens too");
  });
}

test("the negative cases do not open", async () => {
  assert.equal(vectors.negative.offer_under_out_topic, true);
  assert.equal(await open(vectors.offer.payload, vectors.answer.topic, keys.viewerToDevice), null, "offer under the out topic");
  assert.equal(vectors.negative.answer_under_in_topic, true);
  assert.equal(await open(vectors.answer.payload, vectors.offer.topic, keys.deviceToViewer), null, "answer under the in topic");
  assert.equal(vectors.negative.offer_with_device_to_viewer_key, true);
  assert.equal(await open(vectors.offer.payload, vectors.offer.topic, keys.deviceToViewer), null, "offer with the device-to-viewer key");
  assert.equal(await open(vectors.answer.payload, vectors.answer.topic, keys.viewerToDevice), null, "answer with the viewer-to-device key");
});

test("altered, foreign or malformed payloads do not open", async () => {
  const { topic, payload } = vectors.answer;
  const parsed = JSON.parse(payload);
  const flipped = fromBase64url(parsed.seal);
  flipped[20] ^= 1;
  const key = keys.deviceToViewer;
  assert.equal(await open(JSON.stringify({ ...parsed, seal: toBase64url(flipped) }), topic, key), null, "one bit flipped");
  assert.equal(await open(JSON.stringify({ ...parsed, kid: "0000000000000000" }), topic, key), null, "another key id");
  assert.equal(await open(JSON.stringify({ ...parsed, v: 2 }), topic, key), null, "another version");
  assert.equal(await open(JSON.stringify({ ...parsed, seal: parsed.seal.slice(0, 30) }), topic, key), null, "too short");
  assert.equal(await open(JSON.stringify({ ...parsed, seal: "not base64url!" }), topic, key), null, "not base64url");
  assert.equal(await open("not json", topic, key), null);
  assert.equal(await open(vectors.offer.plaintext, topic, key), null, "a plain body is not sealed");
});

test("sealing with a random nonce opens again, and never repeats a payload", async () => {
  const body = { v: 1, type: "talk", on: true, seq: 3 };
  const first = await seal(body, "p/d/in/S", keys.viewerToDevice);
  const second = await seal(body, "p/d/in/S", keys.viewerToDevice);
  assert.notEqual(first, second);
  assert.deepEqual(JSON.parse(await open(first, "p/d/in/S", keys.viewerToDevice)), body);
});

test("a payload is sealed when it has a seal, whatever else it holds", () => {
  assert.equal(isSealed(JSON.parse(vectors.offer.payload)), true);
  assert.equal(isSealed({ v: 1, type: "error", code: "unauthorized" }), false);
  assert.equal(isSealed(null), false);
});

test("the vectors' key string parses, and derives the same keys", async () => {
  const parsed = await parseKeyString(vectors.key_string);
  assert.equal(parsed.kid, vectors.kid);
  assert.deepEqual(parsed.secret, secret);
  const derived = await keysFromKeyString(vectors.key_string);
  assert.equal(await open(vectors.answer.payload, vectors.answer.topic, derived.deviceToViewer), vectors.answer.plaintext);
});

test("damaged key strings are refused with words a person can act on", async () => {
  const [kid, secretText] = vectors.key_string.split(".");
  const otherKid = `${kid.slice(0, -1)}${kid.endsWith("0") ? "1" : "0"}`;
  const cases = [
    [`${otherKid}.${secretText}`, /does not match its key id/],
    [`${kid}.${secretText.slice(0, -2)}`, /not 32 bytes/],
    [`${kid}.${secretText}AAAA`, /not 32 bytes/],
    [`${kid}.${secretText.slice(0, -1)}+`, /not 32 bytes/],
    [secretText, /not a key id and a secret/],
    [`${kid.toUpperCase()}.${secretText}`, /not a key id and a secret/],
    [`${kid}.${secretText}.x`, /not a key id and a secret/],
    [null, /not a key id and a secret/],
  ];
  for (const [text, message] of cases) {
    await assert.rejects(parseKeyString(text), (e) => e instanceof PairingError && message.test(e.message) && /peercam pair/.test(e.message), String(text));
  }
});

test("the vectors' pairing link: every field, and the name whether its ' is encoded or not", async () => {
  const { link, page, broker, prefix, device, name } = vectors.pairing_link;
  assert.ok(link.startsWith(`${page}#`));
  const parsed = parseLink(new URL(link).hash);
  assert.equal(parsed.broker, broker);
  assert.equal(parsed.prefix, prefix);
  assert.equal(parsed.device, device);
  assert.equal(parsed.name, name);
  assert.equal(parsed.key, vectors.key_string);
  assert.equal((await parseKeyString(parsed.key)).kid, vectors.kid);
  assert.ok(link.includes("%27"), "the vector encodes the apostrophe");
  assert.equal(parseLink(new URL(link.replace("%27", "'")).hash).name, name, "a raw ' (encodeURIComponent) decodes the same");
  assert.equal(parseLink(new URL(link.replace("%27", "'")).hash).name, "Alice's phone");
});
