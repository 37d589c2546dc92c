// One session's signaling in sealed mode (PROTOCOL.md "Sealed mode"): every
// body the viewer sends is numbered (`seq`) and sealed on `in/S`; of what
// arrives on `out/S` only sealed payloads that open under that topic and
// move `seq` forward are acted on. The one unsealed message worth hearing
// is the device's `error unauthorized`, a hint that it does not know this
// viewer's key (which the viewer keeps all the same).

import { PROTOCOL_VERSION, parseObject } from "./protocol.js";
import { isSealed, open, seal } from "./seal.js";

/** What the page says when the device turns this viewer's key down. */
export const UNAUTHORIZED_HINT = "The camera does not accept this viewer's key — it may have been revoked. Pair again with `peercam pair`.";

/**
 * What an opened plaintext is worth, given the last `seq` accepted on the
 * session: `{ message }` for a v1 body with a `type` whose integer `seq`
 * is greater, else `{ drop }` saying why (an old or repeated `seq` is a
 * replay or an MQTT duplicate).
 */
export function acceptOpened(plaintext, lastSeq) {
  const message = parseObject(plaintext);
  if (!message || message.v !== PROTOCOL_VERSION || typeof message.type !== "string") return { drop: "not a v1 message" };
  if (!Number.isSafeInteger(message.seq) || message.seq < 1) return { drop: "no seq" };
  if (message.seq <= lastSeq) return { drop: "replayed seq" };
  return { message };
}

/**
 * What a payload on `out/S` is before any opening, for a viewer that
 * seals: "open" (sealed), "hint" (an unsealed `error unauthorized` while
 * nothing sealed has been accepted yet, and not heard before), or "drop".
 * Once the device has spoken sealed on the session, an unsealed
 * `unauthorized` can only be forged, and is dropped.
 */
export function classifyIncoming(payload, { accepted, hinted }) {
  if (isSealed(payload)) return "open";
  const unauthorized = payload?.v === PROTOCOL_VERSION && payload.type === "error" && payload.code === "unauthorized";
  return unauthorized && !accepted && !hinted ? "hint" : "drop";
}

/**
 * The sealed side of one session: `keys` from seal.js `deriveKeys`,
 * `topics` its `in` and `out`. `receive` must be called in arrival order,
 * one at a time (the call's inbox does): the `seq` check depends on it.
 */
export class SealedSession {
  constructor(keys, topics) {
    this.keys = keys;
    this.topics = topics;
    this.sentSeq = 0;
    this.receivedSeq = 0;
    this.hinted = false;
  }

  /** The sealed payload of `body` with the next `seq`, numbered now so payloads can be sealed concurrently and published in this order. */
  seal(body) {
    this.sentSeq += 1;
    return seal({ v: PROTOCOL_VERSION, ...body, seq: this.sentSeq }, this.topics.in, this.keys.viewerToDevice);
  }

  /**
   * A payload from `out/S`: `{ message }` to act on, `{ hint }` for an
   * unsealed `error unauthorized` (see classifyIncoming), or `{ drop }`
   * with the reason it was dropped.
   */
  async receive(payload) {
    const parsed = parseObject(payload);
    const kind = classifyIncoming(parsed, { accepted: this.receivedSeq > 0, hinted: this.hinted });
    if (kind === "hint") {
      this.hinted = true;
      return { hint: parsed };
    }
    if (kind === "drop") return { drop: parsed ? "not sealed" : "not a JSON object" };
    const plaintext = await open(parsed, this.topics.out, this.keys.deviceToViewer);
    if (plaintext === null) return { drop: "does not open" };
    const accepted = acceptOpened(plaintext, this.receivedSeq);
    if (accepted.message) this.receivedSeq = accepted.message.seq;
    return accepted;
  }
}
