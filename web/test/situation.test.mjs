// Each situation a person can be in has a title and says what to do.
import assert from "node:assert/strict";
import { test } from "node:test";
import { situation, stateLabel } from "../js/situation.js";

const base = { network: true, link: true, broker: "up", brokerUrl: "wss://b:8084", error: null, state: "ready", device: { name: "Front door", known: true, online: true }, offline: "Front door is offline." };
const kind = (over) => situation({ ...base, ...over })?.kind ?? null;

test("every situation has a title and a sentence saying what to do", () => {
  const cases = [
    { network: false }, { link: false }, { broker: "reconnecting" }, { state: "reconnecting" }, { broker: "connecting" }, { broker: "down" },
    { error: { code: "broker", message: "Cannot reach the broker at wss://b:8084; retrying." } }, { device: null },
    { device: { name: "Front door", known: false, online: false } }, { device: { name: "Front door", known: true, online: false } }, { state: "calling" }, {},
  ];
  for (const over of cases) {
    const s = situation({ ...base, ...over });
    assert.ok(s.title.length > 0 && s.advice.length > 0, JSON.stringify(over));
  }
});

test("the network comes first, then the broker, then the doorbell, then the call", () => {
  assert.equal(kind({ network: false, broker: "down", state: "error", error: { code: "busy" } }), "network-offline");
  assert.equal(kind({ link: false, state: "idle", broker: "none" }), "setup");
  assert.equal(kind({ broker: "reconnecting", device: { name: "x", known: true, online: false } }), "reconnecting");
  assert.equal(kind({ state: "reconnecting" }), "reconnecting", "an ICE restart after a network change");
  assert.equal(kind({ broker: "connecting" }), "connecting");
  assert.equal(kind({ broker: "down" }), "no-broker");
  assert.equal(kind({ device: null }), "choose");
  assert.equal(kind({ device: { name: "x", known: false, online: false } }), "waiting");
  assert.equal(kind({ device: { name: "x", known: true, online: false } }), "device-offline");
  assert.equal(kind({ state: "calling" }), "calling");
  assert.equal(kind({ state: "ended" }), "idle");
  assert.equal(kind({ state: "connected" }), null, "live: the picture says it");
});

test("the broker's own error is the advice; a call's error is left to the picture", () => {
  const message = "The broker refused the subscription to home/+/status: not authorized";
  assert.deepEqual(situation({ ...base, state: "error", error: { code: "broker", message } }), { kind: "no-broker", title: "No connection to the broker.", advice: message });
  assert.match(situation({ ...base, broker: "down" }).advice, /wss:\/\/b:8084/);
  assert.equal(kind({ state: "error", error: { code: "busy", message: "busy" } }), null);
  assert.equal(kind({ state: "error", error: { code: "offline", message: "x" }, device: { name: "x", known: true, online: false } }), "device-offline");
});

test("the offline doorbell's title is the since-when sentence", () => {
  const s = situation({ ...base, device: { name: "Front door", known: true, online: false }, offline: "Front door has been offline since 09:05:00." });
  assert.equal(s.title, "Front door has been offline since 09:05:00.");
  assert.match(s.advice, /power and network/);
});

test("the state badge uses words, not internal names", () => {
  assert.equal(stateLabel("connecting-broker"), "connecting");
  assert.equal(stateLabel("connected"), "live");
  assert.equal(stateLabel("error"), "problem");
  assert.equal(stateLabel("something-new"), "something-new");
});
