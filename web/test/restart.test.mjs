// When a call restarts ICE: the pure reducer, driven with a made-up clock.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DISCONNECTED_GRACE_MS, MAX_ICE_RESTARTS, RESTART_TIMEOUT_MS, initialRestart, pathEvent, restartReducer } from "../js/restart.js";

/** Runs `events` (`[event, now]` pairs) from `state`; returns the last state and every action, in order. */
function run(state, events) {
  const actions = [];
  for (const [event, now] of events) {
    const next = restartReducer(state, event, now);
    state = next.state;
    actions.push(...next.actions);
  }
  return { state, actions };
}

const CONNECTED = { type: "connected" };
const DISCONNECTED = { type: "disconnected" };
const FAILED = { type: "failed" };
const CHECKING = { type: "checking" };
const WAKE = { type: "wake" };
const RESTART = [{ type: "restart" }, { type: "wake", inMs: RESTART_TIMEOUT_MS }];

/** A call that connected at time 0. */
function connected() {
  return run(initialRestart(), [[CONNECTED, 0]]).state;
}

test("the peer connection's two states become one path event", () => {
  assert.equal(pathEvent("failed", "connected"), "failed");
  assert.equal(pathEvent("checking", "failed"), "failed");
  assert.equal(pathEvent("disconnected", "connected"), "disconnected");
  assert.equal(pathEvent("connected", "disconnected"), "disconnected");
  assert.equal(pathEvent("connected", "connected"), "connected");
  assert.equal(pathEvent("completed", "connected"), "connected");
  assert.equal(pathEvent("connected", "connecting"), "checking", "ICE alone is not a call: DTLS has not connected yet");
  assert.equal(pathEvent("new", "new"), "checking");
  assert.equal(pathEvent("checking", "connecting"), "checking");
});

test("failing before the call ever connected ends it: there is no path to restore", () => {
  const { state, actions } = run(initialRestart(), [[CHECKING, 0], [DISCONNECTED, 100], [FAILED, 200]]);
  assert.deepEqual(actions, [{ type: "end", code: "no-connectivity", message: "The network path to the device failed." }]);
  assert.equal(state.phase, "ended");
  assert.equal(state.restarts, 0);
});

test("connecting cancels any wake-up, once", () => {
  assert.deepEqual(restartReducer(initialRestart(), CONNECTED, 0).actions, [{ type: "sleep" }]);
  assert.deepEqual(run(initialRestart(), [[CONNECTED, 0], [CHECKING, 1], [CONNECTED, 2]]).actions, [{ type: "sleep" }]);
});

test("a disconnection that heals within the grace period restarts nothing", () => {
  const { state, actions } = run(connected(), [
    [DISCONNECTED, 1000],
    [CONNECTED, 1000 + DISCONNECTED_GRACE_MS - 1],
    [WAKE, 1000 + DISCONNECTED_GRACE_MS],
  ]);
  assert.deepEqual(actions, [{ type: "wake", inMs: DISCONNECTED_GRACE_MS }, { type: "sleep" }]);
  assert.equal(state.phase, "connected");
  assert.equal(state.restarts, 0);
});

test("a disconnection that outlasts the grace period restarts ICE; an early wake-up does not", () => {
  const early = run(connected(), [[DISCONNECTED, 1000], [WAKE, 1000 + DISCONNECTED_GRACE_MS - 1]]);
  assert.deepEqual(early.actions, [{ type: "wake", inMs: DISCONNECTED_GRACE_MS }]);
  const { state, actions } = run(early.state, [[WAKE, 1000 + DISCONNECTED_GRACE_MS]]);
  assert.deepEqual(actions, RESTART);
  assert.deepEqual(state, { phase: "restarting", path: "disconnected", since: 1000 + DISCONNECTED_GRACE_MS, restarts: 1 });
});

test("failed restarts at once, and the same failure reported by both states restarts once", () => {
  const { state, actions } = run(connected(), [[FAILED, 500], [FAILED, 501]]);
  assert.deepEqual(actions, RESTART);
  assert.equal(state.restarts, 1);
});

test("a restart that reconnects goes back to connected and keeps the count", () => {
  const { state, actions } = run(connected(), [[FAILED, 500], [CHECKING, 600], [CONNECTED, 900], [WAKE, 500 + RESTART_TIMEOUT_MS]]);
  assert.deepEqual(actions, [...RESTART, { type: "sleep" }]);
  assert.deepEqual(state, { phase: "connected", path: "connected", since: null, restarts: 1 });
});

test("during a restart a failure waits for the restart's timeout, then the next restart", () => {
  const { state, actions } = run(connected(), [
    [DISCONNECTED, 0],
    [WAKE, DISCONNECTED_GRACE_MS],
    [FAILED, DISCONNECTED_GRACE_MS + 10],
    [WAKE, DISCONNECTED_GRACE_MS + RESTART_TIMEOUT_MS - 1],
  ]);
  assert.deepEqual(actions, [{ type: "wake", inMs: DISCONNECTED_GRACE_MS }, ...RESTART], "the old path failing does not hurry anything");
  const next = run(state, [[WAKE, DISCONNECTED_GRACE_MS + RESTART_TIMEOUT_MS]]);
  assert.deepEqual(next.actions, RESTART);
  assert.equal(next.state.restarts, 2);
});

test(`after ${MAX_ICE_RESTARTS} restarts that do not reconnect, the call ends and says why`, () => {
  let { state, actions } = run(connected(), [[FAILED, 0]]);
  for (let i = 1; i < MAX_ICE_RESTARTS; i++) ({ state, actions } = run(state, [[WAKE, i * RESTART_TIMEOUT_MS]]));
  assert.deepEqual(actions, RESTART);
  assert.equal(state.restarts, MAX_ICE_RESTARTS);
  ({ state, actions } = run(state, [[WAKE, MAX_ICE_RESTARTS * RESTART_TIMEOUT_MS]]));
  assert.equal(actions.length, 1);
  assert.equal(actions[0].type, "end");
  assert.equal(actions[0].code, "connection-lost");
  assert.match(actions[0].message, new RegExp(`connection to the device was lost, and ${MAX_ICE_RESTARTS} attempts to restore it \\(ICE restarts\\) failed`));
  assert.equal(state.phase, "ended");
  assert.deepEqual(run(state, [[CONNECTED, 1e6], [FAILED, 1e6 + 1], [WAKE, 1e6 + 2]]).actions, [], "an ended call stays ended");
});

test("the restarts are counted per call: a later loss after the last one ends the call", () => {
  let state = connected();
  for (let i = 0; i < MAX_ICE_RESTARTS; i++) state = run(state, [[FAILED, i * 100], [CONNECTED, i * 100 + 50]]).state;
  assert.equal(state.restarts, MAX_ICE_RESTARTS);
  const { actions } = run(state, [[DISCONNECTED, 10000], [WAKE, 10000 + DISCONNECTED_GRACE_MS]]);
  assert.deepEqual(actions.map((a) => a.type), ["wake", "end"]);
});

test("the budget fits in the 30 s a device waits for a lost viewer", () => {
  assert.ok(DISCONNECTED_GRACE_MS + MAX_ICE_RESTARTS * RESTART_TIMEOUT_MS < 30000);
});
