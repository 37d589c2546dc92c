// The pairing link: what the URL fragment carries to the viewer, and the
// fragment the page writes back so it can be bookmarked. The broker
// password (`w`) and a sealed-mode key (`k`) are read from a link but
// never written into one: the page's address ends up in the browser's
// history. `relay=1` makes calls use TURN-relayed candidates only (to test
// a TURN server, or to keep the viewer's own addresses from the device).

import { PROTOCOL_VERSION, isDeviceId } from "./protocol.js";
import { PairingError, parseKeyString } from "./seal.js";

const DEFAULT_PREFIX = "peercam";
const PASSWORD_PARAM = "w";
const KEY_PARAM = "k";
const RELAY_PARAM = "relay";
/** The WebSocket port a page opened without a link suggests: Mosquitto's usual one, and its usual TLS neighbour. */
const DEFAULT_BROKER_PORTS = { ws: 8083, wss: 8084 };

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
 * `hash` without the secrets a link may carry (the broker password and the
 * sealed-mode key), to replace the address the page was opened with; null
 * when there is nothing to remove.
 */
export function withoutSecrets(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const secrets = [PASSWORD_PARAM, KEY_PARAM].filter((name) => params.has(name));
  if (secrets.length === 0) return null;
  for (const name of secrets) params.delete(name);
  const rest = params.toString();
  return rest ? "#" + rest : "";
}

/**
 * The paired device a link with a key (`k`) names, as
 * `{ broker, prefix, device, key, name, username }` to keep (never the
 * password); a PairingError, whose message the page shows, when the link
 * is damaged: a key that does not match its key id, no valid device.
 */
export async function pairingFromLink(link) {
  if (!isDeviceId(link.device)) {
    throw new PairingError("This pairing link is damaged: it names no valid device. Ask for a new link with `peercam pair`.");
  }
  await parseKeyString(link.key);
  return { broker: link.broker, prefix: link.prefix, device: link.device, key: link.key, name: link.name ?? "", username: link.username };
}

/** Hosts a browser lets an https page reach over plain `ws://`: loopback is trustworthy. */
const LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"];

/**
 * Why an https page cannot use `broker`, or null when it can: a browser
 * refuses plain `ws://` from an https page (mixed content), except to
 * loopback.
 */
export function mixedContentProblem(broker, pageProtocol) {
  if (pageProtocol !== "https:") return null;
  let url;
  try {
    url = new URL(broker);
  } catch {
    return null;
  }
  if (url.protocol !== "ws:" || LOOPBACK_HOSTS.includes(url.hostname)) return null;
  return `This page was opened over https, so the browser refuses the unencrypted broker address ${broker}. Use wss://${url.host}${url.pathname === "/" ? "" : url.pathname} (the broker's WebSocket listener with TLS).`;
}

/**
 * The broker a page opened without a link suggests: its own host, over
 * `wss` when the page came over https (a browser refuses `ws` there).
 */
export function defaultBrokerUrl({ protocol, hostname }) {
  const scheme = protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${hostname || "127.0.0.1"}:${DEFAULT_BROKER_PORTS[scheme]}`;
}
