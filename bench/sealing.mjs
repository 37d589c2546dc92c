// What sealing costs the viewer per message: WebCrypto (Node's, the same
// API as the browser's) sealing an offer-sized body and opening a
// candidate-sized reply, with the viewer's own module (web/js/seal.js).
// Prints numbers; run by bench/sealing.
import { webcrypto } from "node:crypto";
import { deriveKeys, open, seal } from "../web/js/seal.js";

const MESSAGES = Number(process.argv[2] ?? 5000);
const secret = webcrypto.getRandomValues(new Uint8Array(32));
const keys = await deriveKeys(secret, { extractable: true });
const inTopic = "peercam/cam1/in/benchSession-00000001";
const outTopic = "peercam/cam1/out/benchSession-00000001";
const sdp = "a=candidate:1 1 udp 2130706431 192.168.1.20 50000 typ host\r\n".repeat(60);
const offer = { v: 1, type: "offer", sdp, nonce: "oKGio6SlpqeoqaqrrK2urw", seq: 1 };

async function perMessage(what, step) {
  for (let i = 0; i < 200; i++) await step(i);
  const started = performance.now();
  for (let i = 0; i < MESSAGES; i++) await step(i);
  const micros = ((performance.now() - started) * 1000) / MESSAGES;
  console.log(`viewer, ${what}: ${micros.toFixed(1)} µs per message`);
}

const sealedOffer = await seal(offer, inTopic, keys.viewerToDevice);
await perMessage(`seal a ${sealedOffer.length}-byte offer`, (i) => seal({ ...offer, seq: i + 1 }, inTopic, keys.viewerToDevice));

// A reply as the device would seal it: with the device-to-viewer key.
const reply = { v: 1, type: "candidate", candidate: "candidate:1 1 udp 2130706431 192.168.1.20 50000 typ host", sdpMid: "0", sdpMLineIndex: 0, seq: 2 };
const sealedReply = await seal(reply, outTopic, keys.deviceToViewer);
await perMessage("open a candidate-sized reply", () => open(sealedReply, outTopic, keys.deviceToViewer));
