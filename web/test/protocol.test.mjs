// Topic names and payloads per PROTOCOL.md.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  candidateBody, candidateInit, decodeSessionMessage, encodeBody, eventFilter, eventUpdate, iceServersFrom, iceUfrag, parseObject, randomSessionId, sessionTopics, statusFilter, statusUpdate,
} from "../js/protocol.js";

const bytes = (text) => new TextEncoder().encode(text);

test("status topics: the filter, and the device id of each status under the prefix", () => {
  assert.equal(statusFilter("home/cams"), "home/cams/+/status");
  const update = statusUpdate("home/cams", "home/cams/front_door-1/status", bytes('{"v":1,"online":true,"name":"Front","viewers":1}'));
  assert.deepEqual(update, { id: "front_door-1", device: { id: "front_door-1", v: 1, online: true, name: "Front", viewers: 1 } });
});

test("topics that are not a device status are ignored", () => {
  const status = bytes('{"v":1,"online":true}');
  for (const topic of ["other/cam/status", "home/cams/cam/event", "home/cams/a/b/status", "home/cams/status", "home/cams/bad.id/status", `home/cams/${"x".repeat(65)}/status`]) {
    assert.equal(statusUpdate("home/cams", topic, status), null, topic);
  }
});

test("a cleared retained status removes the device", () => {
  assert.deepEqual(statusUpdate("p", "p/cam/status", new Uint8Array(0)), { id: "cam", device: null });
});

test("a status is online only when it says true; one that is not v1 JSON is ignored", () => {
  assert.equal(statusUpdate("p", "p/cam/status", bytes('{"v":1,"online":"yes"}')).device.online, false);
  assert.equal(statusUpdate("p", "p/cam/status", bytes('{"v":1}')).device.online, false);
  for (const payload of ['{"v":2,"online":true}', '{"v":"1","online":true}', "[1]", "not json", "null"]) {
    assert.equal(statusUpdate("p", "p/cam/status", bytes(payload)), null, payload);
  }
});

test("session topics and a fresh session id in the allowed alphabet and length", () => {
  assert.deepEqual(sessionTopics("p/q", "cam", "S".repeat(22)), { in: `p/q/cam/in/${"S".repeat(22)}`, out: `p/q/cam/out/${"S".repeat(22)}` });
  const id = randomSessionId((b) => b.fill(0xfb));
  assert.equal(id, "-_v7-_v7-_v7-_v7-_v7-w", "base64url without padding");
  assert.match(randomSessionId(), /^[A-Za-z0-9_-]{16,64}$/);
  assert.notEqual(randomSessionId(), randomSessionId());
});

test("bodies go out with v 1", () => {
  assert.deepEqual(JSON.parse(encodeBody({ type: "talk", on: true })), { v: 1, type: "talk", on: true });
});

test("session messages: v1 objects with a type are taken, with their text for duplicate checks", () => {
  const text = '{"v":1,"type":"answer","sdp":"v=0"}';
  assert.deepEqual(decodeSessionMessage(bytes(text)), { message: { v: 1, type: "answer", sdp: "v=0" }, text });
  for (const payload of ['{"v":"1","type":"answer"}', '{"v":2,"type":"answer"}', '{"v":1}', '{"v":1,"type":5}', "[]", "{", ""]) {
    assert.equal(decodeSessionMessage(bytes(payload)), null, payload);
  }
});

test("parseObject takes strings and bytes, and only objects", () => {
  assert.deepEqual(parseObject('{"a":1}'), { a: 1 });
  assert.deepEqual(parseObject(bytes('{"a":1}')), { a: 1 });
  assert.equal(parseObject("1"), null);
  assert.equal(parseObject(new Uint8Array([0xff, 0xfe])), null);
});

test("a local candidate becomes a candidate body; the end-of-candidates names the first m-line", () => {
  const candidate = { candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", sdpMid: "1", sdpMLineIndex: 1, usernameFragment: "abcd" };
  assert.deepEqual(candidateBody(candidate, "0"), { type: "candidate", ...candidate });
  assert.deepEqual(candidateBody(null, "v0"), { type: "candidate", candidate: "", sdpMid: "v0", sdpMLineIndex: 0 });
  assert.deepEqual(candidateBody(null, undefined), { type: "candidate", candidate: "", sdpMid: "0", sdpMLineIndex: 0 });
  assert.deepEqual(candidateBody(null, "0", "gen2"), { type: "candidate", candidate: "", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "gen2" },
    "end-of-candidates names the ICE generation it ends, as every candidate after a restart must");
});

test("the ICE username fragment of a session description", () => {
  assert.equal(iceUfrag("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:Ab+/\r\na=ice-pwd:x\r\n"), "Ab+/");
  assert.equal(iceUfrag("v=0\r\n"), null);
  assert.equal(iceUfrag(undefined), null, "no local description yet");
});

test("a device candidate without sdpMid or sdpMLineIndex applies to the first m-line", () => {
  assert.deepEqual(candidateInit({ candidate: "candidate:x" }, "0"), { candidate: "candidate:x", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: undefined });
  assert.deepEqual(candidateInit({ candidate: "candidate:x", sdpMid: "1" }, "0"), { candidate: "candidate:x", sdpMid: "1", sdpMLineIndex: undefined, usernameFragment: undefined });
  assert.deepEqual(candidateInit({ candidate: "candidate:x", sdpMLineIndex: 1, usernameFragment: "u" }, "0"), { candidate: "candidate:x", sdpMid: undefined, sdpMLineIndex: 1, usernameFragment: "u" });
  assert.deepEqual(candidateInit({ sdpMid: "0", sdpMLineIndex: 0 }, "0").candidate, "", "end-of-candidates");
});

test("ICE servers from a reply, or the fallback when it has no list", () => {
  const fallback = [{ urls: ["stun:s:3478"] }];
  const turn = [{ urls: ["turn:t:3478"], username: "u", credential: "c" }];
  assert.equal(iceServersFrom(turn, fallback), turn);
  assert.equal(iceServersFrom(undefined, fallback), fallback);
  assert.equal(iceServersFrom({ urls: "x" }, fallback), fallback);
});

test("event topics: the filter, and each v1 event with its device id", () => {
  assert.equal(eventFilter("home/cams"), "home/cams/+/event");
  assert.deepEqual(eventUpdate("home/cams", "home/cams/front/event", bytes('{"v":1,"type":"ring","at":"2026-11-23T19:00:00Z"}')), {
    id: "front", event: { v: 1, type: "ring", at: "2026-11-23T19:00:00Z" },
  });
  assert.equal(eventUpdate("home/cams", "home/cams/front/status", bytes('{"v":1,"type":"ring"}')), null);
  assert.equal(eventUpdate("home/cams", "home/cams/a/b/event", bytes('{"v":1,"type":"ring"}')), null);
  assert.equal(eventUpdate("home/cams", "home/cams/front/event", bytes('{"v":2,"type":"ring"}')), null);
  assert.equal(eventUpdate("home/cams", "home/cams/front/event", bytes('{"v":1}')), null);
  assert.equal(eventUpdate("home/cams", "home/cams/front/event", bytes("ring")), null);
});
