// The talk floor: button timing, and what the device's answers and floor events do to it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { TOGGLE_PRESS_MS, floorReducer, floorSnapshot, holderText, initialFloor, talkButtonText } from "../js/floor.js";

/** Runs `events` from `state`, returning every intermediate state. */
function run(state, ...events) {
  const states = [];
  for (const event of events) {
    state = floorReducer(state, event);
    states.push(state);
  }
  return states;
}

const GRANTED = { type: "reply", granted: true, holder: "viewer" };

test("a short press latches talk on; the next press turns it off", () => {
  const [down, up, again] = run(initialFloor(),
    { type: "press", now: 1000 },
    { type: "release", now: 1000 + TOGGLE_PRESS_MS - 1, onButton: true },
    { type: "press", now: 5000 });
  assert.equal(down.send, true);
  assert.equal(up.send, null, "a short press sends nothing on release");
  assert.equal(up.want, true);
  assert.equal(again.send, false);
  assert.equal(again.want, false);
});

test("a long press talks while held and stops on release", () => {
  const [, up] = run(initialFloor(),
    { type: "press", now: 1000 },
    { type: "release", now: 1000 + TOGGLE_PRESS_MS, onButton: true });
  assert.equal(up.send, false);
  assert.equal(up.want, false);
  assert.equal(up.pressedAt, null);
});

test("a pointer that leaves the button or is cancelled stops talk even after a short press", () => {
  const [, left] = run(initialFloor(), { type: "press", now: 1000 }, { type: "release", now: 1010, onButton: false });
  assert.equal(left.send, false);
  assert.equal(left.want, false);
});

test("a release without a press does nothing", () => {
  const [state] = run(initialFloor(), { type: "release", now: 1000, onButton: false });
  assert.equal(state.send, null);
  assert.equal(state.outstanding, 0);
});

test("the release after a press that stopped talk sends nothing more", () => {
  const [, , stop, up] = run(initialFloor(),
    { type: "press", now: 0 },
    { type: "release", now: 10, onButton: true },
    { type: "press", now: 2000 },
    { type: "release", now: 2600, onButton: true });
  assert.equal(stop.send, false);
  assert.equal(up.send, null);
});

test("keyboard toggles and the page API set the request", () => {
  const [on, off, set] = run(initialFloor(), { type: "toggle" }, { type: "toggle" }, { type: "set", on: true });
  assert.equal(on.send, true);
  assert.equal(off.send, false);
  assert.equal(set.send, true);
  assert.equal(set.outstanding, 3);
});

test("a grant while we still want the floor makes us the holder", () => {
  const [asked, granted] = run(initialFloor(), { type: "set", on: true }, GRANTED);
  assert.equal(floorSnapshot(asked).requesting, true);
  assert.equal(granted.holding, true);
  assert.equal(granted.holder, "viewer");
  assert.equal(granted.ownLabel, "viewer");
  assert.equal(granted.send, null);
  assert.deepEqual(floorSnapshot(granted), { holding: true, holder: "viewer", lastReply: { granted: true, holder: "viewer" }, events: [], requesting: false });
  assert.equal(holderText(granted), "You are talking");
});

test("a denial leaves someone else holding the floor and drops our request", () => {
  const [, denied] = run(initialFloor(), { type: "set", on: true }, { type: "reply", granted: false, holder: "alice" });
  assert.equal(denied.holding, false);
  assert.equal(denied.want, false);
  assert.equal(denied.holder, "alice");
  assert.equal(holderText(denied), "alice is talking");
});

test("only the answer to the latest request decides", () => {
  const [, , stale, latest] = run(initialFloor(),
    { type: "set", on: true },
    { type: "set", on: false },
    GRANTED,
    { type: "reply", granted: false, holder: null });
  assert.equal(stale.holding, false, "a grant for an earlier request does not take the floor");
  assert.deepEqual(stale.lastReply, { granted: true, holder: "viewer" });
  assert.equal(latest.outstanding, 0);
  assert.equal(latest.holding, false);
  assert.equal(latest.holder, null);
});

test("a stale denial does not cancel the request still waiting for its answer", () => {
  const [, , , stale, latest] = run(initialFloor(),
    { type: "set", on: true },
    { type: "set", on: false },
    { type: "set", on: true },
    { type: "reply", granted: false, holder: null },
    { type: "reply", granted: false, holder: null });
  assert.equal(stale.want, true);
  assert.equal(floorSnapshot(stale).requesting, true);
  assert.equal(latest.want, true, "still waiting");
  const [granted] = run(latest, GRANTED);
  assert.equal(granted.holding, true);
});

test("a grant arriving after we let go does not make us hold the floor", () => {
  const [, , , late] = run(initialFloor(), { type: "set", on: true }, GRANTED, { type: "set", on: false }, GRANTED);
  assert.equal(late.holding, false);
});

test("releasing while holding lets go at once, before the device answers", () => {
  const [, , released] = run(initialFloor(), { type: "set", on: true }, GRANTED, { type: "set", on: false });
  assert.equal(released.holding, false);
  assert.equal(released.holder, null);
  assert.equal(released.send, false);
});

test("floor events: the floor going free or to another label takes it from us", () => {
  const holding = run(initialFloor(), { type: "set", on: true }, GRANTED).at(-1);
  const [same] = run(holding, { type: "changed", event: { type: "talk", holder: "viewer" } });
  assert.equal(same.holding, true, "our own label keeps the floor");
  const [free] = run(holding, { type: "changed", event: { type: "talk", holder: null } });
  assert.equal(free.holding, false);
  assert.equal(free.want, false);
  const [taken] = run(holding, { type: "changed", event: { type: "talk", holder: "bob" } });
  assert.equal(taken.holding, false);
  assert.equal(taken.holder, "bob");
  assert.deepEqual(floorSnapshot(taken).events, [{ type: "talk", holder: "bob" }]);
});

test("floor events are recorded in order; a holder that is not a string is nobody", () => {
  const [, second] = run(initialFloor(), { type: "changed", event: { type: "talk", holder: "a" } }, { type: "changed", event: { type: "talk", holder: 7 } });
  assert.equal(second.holder, null);
  assert.deepEqual(second.events.map((e) => e.holder), ["a", 7]);
  assert.equal(holderText(second), "nobody is talking");
});

test("an error answering talk refuses the floor; unsupported means never on this call", () => {
  const [, busy] = run(initialFloor(), { type: "press", now: 0 }, { type: "refused", code: "bad-request" });
  assert.equal(busy.want, false);
  assert.equal(busy.outstanding, 0);
  assert.equal(busy.unsupported, false);
  assert.equal(busy.pressedAt, null);
  const [, never] = run(initialFloor(), { type: "set", on: true }, { type: "refused", code: "unsupported" });
  assert.equal(never.unsupported, true);
  const [, still] = run(never, { type: "set", on: true }, { type: "refused", code: "bad-request" });
  assert.equal(still.unsupported, true, "unsupported sticks");
});

test("the end of the call drops the floor and the press", () => {
  const holding = run(initialFloor(), { type: "press", now: 0 }, GRANTED).at(-1);
  const [ended] = run(holding, { type: "ended" });
  assert.equal(ended.want, false);
  assert.equal(ended.holding, false);
  assert.equal(ended.pressedAt, null);
  assert.equal(ended.send, null);
});

test("transitions never change the state they are given", () => {
  const start = initialFloor();
  const frozen = JSON.stringify(start);
  run(start, { type: "press", now: 0 }, GRANTED, { type: "changed", event: { holder: null } });
  assert.equal(JSON.stringify(start), frozen);
});

test("an unknown event is a programming error", () => {
  assert.throws(() => floorReducer(initialFloor(), { type: "presss" }), /unknown floor event presss/);
});

test("without a call the snapshot is empty", () => {
  assert.deepEqual(floorSnapshot(null), { holding: false, holder: null, lastReply: null, events: [], requesting: false });
  assert.equal(holderText(undefined), "nobody is talking");
});

test("the talk button says how to talk, that we ask, that we talk and how to stop, or who else talks", () => {
  const granted = (floor) => floorReducer(floor, { type: "reply", granted: true, holder: "alice" });
  assert.equal(talkButtonText(null), "Hold to talk");
  assert.equal(talkButtonText(initialFloor()), "Hold to talk");
  const pressed = floorReducer(initialFloor(), { type: "press", now: 0 });
  assert.equal(talkButtonText(pressed), "Asking to talk…");
  assert.equal(talkButtonText(granted(pressed)), "You are talking · release to stop");
  const tapped = floorReducer(granted(pressed), { type: "release", now: TOGGLE_PRESS_MS - 1, onButton: true });
  assert.equal(talkButtonText(tapped), "You are talking · tap to stop");
  const other = floorReducer(initialFloor(), { type: "changed", event: { holder: "Bob" } });
  assert.equal(talkButtonText(other), "Bob is talking");
});
