// The pairing link: what the URL fragment carries to the viewer, and the
// fragment the page writes back so it can be bookmarked. The broker
// password (`w`) is read from a link but never written into one: the
// page's address ends up in the browser's history. `relay=1` makes calls
// use TURN-relayed candidates only (to test a TURN server, or to keep the
// viewer's own addresses from the device).

import { PROTOCOL_VERSION } from "./protocol.js";

const DEFAULT_PREFIX = "peercam";
const PASSWORD_PARAM = "w";
const RELAY_PARAM = "relay";

/**
 * Reads `#v=1&b=…&p=…&d=…[&u=…&w=…][&k=…&n=…][&auto=0][&relay=1]`: null without a
 * broker (`b`), `{ problem }` for another protocol version, else the link.
 */
export function parseLink(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  if (!params.has("b")) return null;
  const version = params.get("v");
  if (version !== null && version !== String(PROTOCOL_VERSION)) {
    return { problem: `This link is for protocol version ${version}; this viewer speaks version ${PROTOCOL_VERSION}.` };
  }
  return {
    broker: params.get("b"),
    prefix: params.get("p") || DEFAULT_PREFIX,
    device: params.get("d"),
    username: params.get("u"),
    password: params.get(PASSWORD_PARAM),
    key: params.get("k"),
    name: params.get("n"),
    auto: params.get("auto") !== "0",
    relay: params.get(RELAY_PARAM) === "1",
  };
}

/**
 * The fragment for a broker form and a selected device, to bookmark the
 * page, keeping the link's `relay` option. Never with the password,
 * whatever `form` holds.
 */
export function linkFragment({ broker, prefix, username }, device, { relay = false } = {}) {
  const params = new URLSearchParams({ v: String(PROTOCOL_VERSION), b: broker.trim(), p: prefix.trim() });
  if (device) params.set("d", device);
  if (username) params.set("u", username);
  if (relay) params.set(RELAY_PARAM, "1");
  return "#" + params.toString();
}

/**
 * `hash` without the password, to replace the address the page was opened
 * with; null when there is no password to remove.
 */
export function withoutPassword(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  if (!params.has(PASSWORD_PARAM)) return null;
  params.delete(PASSWORD_PARAM);
  const rest = params.toString();
  return rest ? "#" + rest : "";
}
