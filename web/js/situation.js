// What the page tells a person about the connection: one short title and
// a sentence saying what to do, from the network, the broker link, the
// doorbell's presence and the call. Pure: app.js passes what it knows.

/** The state badge's words for each page state. */
const STATE_LABELS = {
  idle: "not connected",
  "connecting-broker": "connecting",
  ready: "ready",
  calling: "calling",
  connected: "live",
  reconnecting: "reconnecting",
  ended: "ended",
  error: "problem",
};

/** The state badge's text for the page state `state`. */
export function stateLabel(state) {
  return STATE_LABELS[state] ?? state;
}

/**
 * The situation as `{ kind, title, advice }`, or null when the call itself
 * says it all (live, or an error the page shows on the picture). Given:
 * - `network`: the browser thinks it is online (`navigator.onLine`);
 * - `link`: the page has a doorbell or broker to use;
 * - `broker`: "none", "connecting", "up", "reconnecting" (it was up and
 *   the link or the network dropped) or "down" (never reached);
 * - `brokerUrl`, `error` (`{ code, message }`, a note without `code`, or null), `state` (the page's);
 * - `device`: null when none is chosen, else `{ name, known, online }`
 *   (`known`: it announced itself), and `offline`: the sentence saying
 *   since when it is offline (presence.js `offlineText`).
 */
export function situation({ network, link, broker, brokerUrl, error, state, device, offline }) {
  if (!network) {
    return { kind: "network-offline", title: "This phone is offline.", advice: "Check Wi-Fi or mobile data; the viewer reconnects by itself when the network is back." };
  }
  if (!link) {
    return { kind: "setup", title: "No doorbell yet.", advice: "Open the pairing link from `peercam pair` on this phone, or connect to a broker manually below." };
  }
  if (error?.code && !["broker", "offline"].includes(error.code)) return null;
  if (broker === "reconnecting" || state === "reconnecting") {
    return { kind: "reconnecting", title: "Reconnecting after a network change…", advice: "Nothing to do: the picture comes back by itself. If it does not within a minute, check this phone's network." };
  }
  if (broker === "connecting") {
    return { kind: "connecting", title: "Connecting…", advice: `Reaching the broker at ${brokerUrl}; this takes a few seconds.` };
  }
  if (broker === "down" || error?.code === "broker") {
    return {
      kind: "no-broker",
      title: "No connection to the broker.",
      advice: error?.message ?? `Cannot reach ${brokerUrl}; retrying. Check that this phone is on a network that reaches it.`,
    };
  }
  if (!device) return { kind: "choose", title: "Connected.", advice: "Choose a camera from the list below." };
  if (!device.known) {
    return { kind: "waiting", title: `Waiting for ${device.name}…`, advice: "It has not announced itself on the broker yet: check that it is running and uses this broker and prefix." };
  }
  if (!device.online) {
    return { kind: "device-offline", title: offline, advice: "Check that it has power and network. The picture comes back by itself when it is online again." };
  }
  if (state === "calling") return { kind: "calling", title: `Calling ${device.name}…`, advice: "The picture shows in a moment." };
  if (state === "connected") return null;
  return { kind: "idle", title: `${device.name} is online.`, advice: "Tap Watch to see the door. A ring opens the call screen by itself." };
}
