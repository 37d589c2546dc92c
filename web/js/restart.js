// When a connected call restarts ICE, as a pure reducer: (state, event,
// now) -> { state, actions }. The call object feeds it the peer
// connection's state changes and its own wake-ups, and carries out the
// actions; the unit tests drive it with a made-up clock.
//
// A call that loses its path (the viewer's network changed, a NAT mapping
// or a relay went away) first gets DISCONNECTED_GRACE_MS to come back by
// itself; then, or at once on `failed`, the viewer offers again with an
// ICE restart. A restart that has not reconnected after RESTART_TIMEOUT_MS
// is tried again (a `failed` during a restart may be the old path's, so it
// does not hurry the next one). After MAX_ICE_RESTARTS the call ends. Before the call
// ever connected there is nothing to restore: `failed` ends it.

/** How long a connected call may stay `disconnected` before ICE is restarted. */
export const DISCONNECTED_GRACE_MS = 3000;
/** How long one ICE restart may take to reconnect before the next is tried. */
export const RESTART_TIMEOUT_MS = 8000;
/**
 * ICE restarts per call. With the grace and the timeout above, all of them
 * fit in the 30 s a device waits for a lost viewer before it ends the session.
 */
export const MAX_ICE_RESTARTS = 3;

/**
 * What the peer connection's two states say about the path, as a reducer
 * event type: "connected", "disconnected", "failed", or "checking" for
 * the states in between (new, checking, connecting). `connectionState`
 * includes DTLS, so only it says the call is connected.
 */
export function pathEvent(iceConnectionState, connectionState) {
  if (iceConnectionState === "failed" || connectionState === "failed") return "failed";
  if (iceConnectionState === "disconnected" || connectionState === "disconnected") return "disconnected";
  if (connectionState === "connected") return "connected";
  return "checking";
}

/**
 * The state before the call connects. `phase`: "new" (never connected),
 * "connected", "disconnected" (waiting out the grace period since
 * `since`), "restarting" (the last restart began at `since`), "ended";
 * `path`: the last path event; `restarts`: how many restarts the call has used.
 */
export function initialRestart() {
  return { phase: "new", path: "checking", since: null, restarts: 0 };
}

/**
 * The next state and the actions for `event` at time `now` (ms).
 * Events: `{ type: "connected" | "disconnected" | "failed" | "checking" }`
 * (see pathEvent; a repeat of the last one, as when both of the peer
 * connection's states report the same failure, changes nothing) and
 * `{ type: "wake" }` (a wake-up asked for came due).
 * Actions, in order: `{ type: "restart" }` (offer with an ICE restart),
 * `{ type: "wake", inMs }` (send a "wake" event then, replacing any
 * earlier request), `{ type: "sleep" }` (cancel the wake-up),
 * `{ type: "end", code, message }` (end the call).
 */
export function restartReducer(state, event, now) {
  if (state.phase === "ended") return { state, actions: [] };
  if (event.type === "wake") return wake(state, now);
  if (event.type === state.path) return { state, actions: [] };
  return onPath({ ...state, path: event.type }, event.type, now);
}

/** The path changed to `path`. */
function onPath(state, path, now) {
  switch (path) {
    case "connected":
      return { state: { ...state, phase: "connected", since: null }, actions: state.phase === "connected" ? [] : [{ type: "sleep" }] };
    case "disconnected":
      if (state.phase !== "connected") return { state, actions: [] };
      return { state: { ...state, phase: "disconnected", since: now }, actions: [{ type: "wake", inMs: DISCONNECTED_GRACE_MS }] };
    case "failed":
      if (state.phase === "new") {
        return { state: { ...state, phase: "ended" }, actions: [{ type: "end", code: "no-connectivity", message: "The network path to the device failed." }] };
      }
      // While restarting, the old path failing says nothing of the new one: its timeout decides.
      if (state.phase === "restarting") return { state, actions: [] };
      return restart(state, now);
    default:
      return { state, actions: [] };
  }
}

/** A wake-up came due: the grace period or a restart may be over. */
function wake(state, now) {
  if (state.phase === "disconnected" && now - state.since >= DISCONNECTED_GRACE_MS) return restart(state, now);
  if (state.phase === "restarting" && now - state.since >= RESTART_TIMEOUT_MS) return restart(state, now);
  return { state, actions: [] };
}

/** Restarts ICE if the call has a restart left, else ends it. */
function restart(state, now) {
  if (state.restarts >= MAX_ICE_RESTARTS) {
    return {
      state: { ...state, phase: "ended" },
      actions: [{
        type: "end",
        code: "connection-lost",
        message: `The connection to the device was lost, and ${MAX_ICE_RESTARTS} attempts to restore it (ICE restarts) failed. Check the network, then call again.`,
      }],
    };
  }
  return {
    state: { ...state, phase: "restarting", since: now, restarts: state.restarts + 1 },
    actions: [{ type: "restart" }, { type: "wake", inMs: RESTART_TIMEOUT_MS }],
  };
}
