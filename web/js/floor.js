// The talk-back floor as seen by one call: what the user asked for with
// the talk button, what the device granted, and who holds the floor. A
// pure state function, `floorReducer(state, event)`; the caller publishes
// the `talk` request a transition asks for (`send`) and enables the mic
// only while `holding`.

/** A press shorter than this latches talk on (the next press stops it); a longer one talks while held. */
export const TOGGLE_PRESS_MS = 300;

/** The floor at the start of a call: nothing asked, nobody known to hold it. */
export function initialFloor() {
  return {
    want: false,
    holding: false,
    holder: null,
    ownLabel: null,
    lastReply: null,
    events: [],
    outstanding: 0,
    unsupported: false,
    pressedAt: null,
    send: null,
  };
}

/**
 * The floor after `event`. `send` in the result is the `on` of the `talk`
 * message this transition calls for, or null for none. Events:
 * - `{ type: "press", now }`: the talk button went down (stops talk when on);
 * - `{ type: "release", now, onButton }`: it came up (`onButton`: lifted
 *   on the button; false when the pointer left or was cancelled). A short
 *   press lifted on the button keeps talk on;
 * - `{ type: "toggle" }`: a keyboard or assistive-technology click;
 * - `{ type: "set", on }`: talk asked for (true) or released (false);
 * - `{ type: "reply", granted, holder }`: the device's `talk` answer;
 * - `{ type: "refused", code }`: an `error` answering a `talk`;
 * - `{ type: "changed", event }`: a floor change event (`{ holder }`);
 * - `{ type: "ended" }`: the call is over.
 */
export function floorReducer(state, event) {
  const next = { ...state, send: null };
  switch (event.type) {
    case "press":
      if (state.want) return request({ ...next, pressedAt: null }, false);
      return request({ ...next, pressedAt: event.now }, true);
    case "release": {
      if (state.pressedAt === null) return next;
      const held = event.now - state.pressedAt >= TOGGLE_PRESS_MS;
      const released = { ...next, pressedAt: null };
      return (held || !event.onButton) && state.want ? request(released, false) : released;
    }
    case "toggle":
      return request(next, !state.want);
    case "set":
      return request(next, event.on);
    case "reply":
      return onReply(next, event);
    case "refused":
      return {
        ...next,
        outstanding: Math.max(0, state.outstanding - 1),
        want: false,
        holding: false,
        pressedAt: null,
        unsupported: state.unsupported || event.code === "unsupported",
      };
    case "changed":
      return onChange(next, event.event);
    case "ended":
      return { ...next, want: false, holding: false, pressedAt: null };
    default:
      throw new Error(`unknown floor event ${event.type}`);
  }
}

/** Asks for (`on`) or releases the floor. Releasing lets go at once; asking waits for the grant. */
function request(state, on) {
  const next = { ...state, want: on, outstanding: state.outstanding + 1, send: on };
  if (!on && state.holding) {
    next.holding = false;
    next.holder = null;
  }
  return next;
}

/**
 * The device's answer to a `talk`. Only the answer to the latest request
 * decides: an earlier one is stale. The floor is ours only if granted
 * while we still want it; the grant's `holder` is our own label.
 */
function onReply(state, { granted, holder }) {
  const reply = { granted: granted === true, holder: typeof holder === "string" ? holder : null };
  const next = { ...state, lastReply: reply, outstanding: Math.max(0, state.outstanding - 1) };
  if (next.outstanding > 0) return next;
  next.holding = reply.granted && state.want;
  next.holder = reply.holder;
  if (reply.granted) next.ownLabel = reply.holder;
  else next.want = false;
  return next;
}

/**
 * A floor change announced to every session. Plain-mode labels are all
 * "viewer", so whether we hold the floor comes from our grant: we lose it
 * when the floor goes free, or to a label other than the one granted.
 */
function onChange(state, event) {
  const holder = typeof event.holder === "string" ? event.holder : null;
  const next = { ...state, holder, events: [...state.events, event] };
  if (state.holding && (holder === null || (state.ownLabel !== null && holder !== state.ownLabel))) {
    next.holding = false;
    next.want = false;
  }
  return next;
}

/** A copy of the floor for `window.peercamViewer.talk` (null: no call yet). */
export function floorSnapshot(state) {
  return {
    holding: !!state?.holding,
    holder: state?.holder ?? null,
    lastReply: state?.lastReply ? { ...state.lastReply } : null,
    events: state ? state.events.map((e) => ({ ...e })) : [],
    requesting: !!state && state.want && !state.holding && state.outstanding > 0,
  };
}

/** The line under the talk button saying who talks. */
export function holderText(state) {
  if (state?.holding) return "You are talking";
  if (state?.holder) return `${state.holder} is talking`;
  return "nobody is talking";
}

/**
 * The talk button's words: how to talk, that we are asking, that we talk
 * (and how to stop: release a held press, tap again after a tap), or who
 * else talks.
 */
export function talkButtonText(state) {
  if (state?.holding) return state.pressedAt === null ? "You are talking · tap to stop" : "You are talking · release to stop";
  if (state?.want) return "Asking to talk…";
  if (state?.holder) return `${state.holder} is talking`;
  return "Hold to talk";
}
