// The viewer's sealed signaling in Chromium, against a fake sealed device
// (no daemon, no media): the https page reads a pairing link, takes its
// key out of the address and keeps the doorbell; its calls are sealed and
// numbered, the first offer carries the status nonce, a stale call is
// placed again on a fresh session with the new nonce; a viewer without a
// key and a damaged link are refused with words a person can act on; a
// bare page goes back to the doorbell, which can be forgotten.
import assert from "node:assert/strict";
import { fakeSealedDevice, newPairingKey } from "./fake-sealed-device.mjs";
import { e2eTest, freshNames, launchBrowser, makeTestCa, serveViewerHttps, startMosquitto, viewerState, waitFor } from "./lib.mjs";

/** Opens `url` in a new page of `browser` and waits for the viewer to report an error; resolves with the page and its state. */
async function openUntilError(browser, url) {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("viewer page error:", e.message));
  await page.goto(url);
  const state = await waitFor("the viewer to stop with an error", async () => {
    const s = await viewerState(page).catch(() => null);
    return s?.state === "error" ? s : null;
  }, 8000);
  return { page, state };
}

e2eTest("sealed signaling from the viewer in Chromium, against a fake sealed device", async (cleanup) => {
  const tls = makeTestCa(cleanup);
  const broker = await startMosquitto(cleanup, { tls });
  const { device, prefix } = freshNames();
  const { secret, keyString } = await newPairingKey();
  const nonces = [];
  const fake = await fakeSealedDevice(cleanup, {
    url: broker.tlsUrl, options: { ca: tls.ca }, prefix, device, secret,
    async respond({ session, body }, self) {
      if (body.type === "ice-servers") await self.reply(session, { type: "ice-servers", ice_servers: [] });
      if (body.type !== "offer") return;
      nonces.push(body.nonce);
      if (nonces.length === 1) {
        await self.rotateNonce();
        await self.reply(session, { type: "error", code: "stale", re: "offer", message: "Read the status again and call again." });
      } else {
        await self.reply(session, { type: "error", code: "busy", re: "offer", message: "Fake devices take no calls." });
      }
    },
  });
  const firstNonce = fake.nonce;
  const viewer = await serveViewerHttps(cleanup, tls);
  const browser = await launchBrowser(cleanup, { tls });
  const link = (params) => `${viewer.url}#${new URLSearchParams({ v: "1", b: broker.wssUrl, p: prefix, d: device, ...params })}`;

  // Paired: sealed calls, placed again once after stale.
  const pairing = link({ k: keyString, n: "Alice's phone" });
  const { page, state } = await openUntilError(browser, pairing);
  assert.equal(state.error.code, "busy", JSON.stringify(state.error));
  const facts = await page.evaluate(() => ({ hash: location.hash, paired: window.peercamViewer.paired, sealed: window.peercamViewer.sealed, stored: localStorage.getItem("peercam.paired") }));
  assert.ok(!facts.hash.includes("k="), `the key is out of the address: ${facts.hash}`);
  assert.ok(!facts.hash.includes(keyString.split(".")[1]));
  assert.deepEqual(facts.paired.map(({ device: d, prefix: p, name }) => ({ d, p, name })), [{ d: device, p: prefix, name: "Alice's phone" }]);
  assert.ok(facts.stored.includes(keyString), "the key is kept in the browser's storage");
  assert.equal(facts.sealed, true);

  const [first, second] = fake.sessions();
  assert.equal(fake.sessions().length, 2, "one call again after stale, on a fresh session");
  assert.ok(fake.received.every((m) => m.body !== null), "every payload was sealed with the pairing key");
  const [askFirst, offerFirst] = fake.bodies(first);
  assert.deepEqual(askFirst, { v: 1, type: "ice-servers", seq: 1 });
  assert.equal(offerFirst.type, "offer");
  assert.equal(offerFirst.seq, 2);
  assert.deepEqual(nonces, [firstNonce, fake.nonce], "the first offer carried the status nonce, the second the new one");
  assert.notEqual(firstNonce, fake.nonce);
  assert.deepEqual(fake.bodies(second).slice(0, 2).map((b) => [b.type, b.seq]), [["ice-servers", 1], ["offer", 2]]);
  for (const session of [first, second]) {
    const seqs = fake.bodies(session).map((b) => b.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1), "seq counts up from 1 on each session");
  }

  // A bare page goes back to the doorbell used last, sealed.
  await page.goto(viewer.url);
  await fake.waitFor("a call from the bare page", () => fake.sessions().length === 3);
  await waitFor("the bare page's call to end busy", async () => (await viewerState(page)).error?.code === "busy", 5000);
  assert.equal(nonces.at(-1), fake.nonce);

  // Forgetting the doorbell forgets its key.
  await page.evaluate(() => window.peercamViewer.forget());
  assert.deepEqual(await page.evaluate(() => window.peercamViewer.paired), []);
  assert.ok(!(await page.evaluate(() => localStorage.getItem("peercam.paired"))).includes(keyString));

  // Not paired: a sealed device is not called.
  const unpaired = await openUntilError(browser, link({}));
  assert.equal(unpaired.state.error.code, "unpaired");
  assert.equal(unpaired.state.error.message, "This camera only accepts paired viewers; open the pairing link from `peercam pair`.");

  // A damaged link is refused, and its key still leaves the address.
  const [kid, encoded] = keyString.split(".");
  const damaged = await openUntilError(browser, link({ k: `${kid.slice(0, -1)}${kid.endsWith("0") ? "1" : "0"}.${encoded}`, n: "Bob" }));
  assert.equal(damaged.state.error.code, "pairing");
  assert.match(damaged.state.error.message, /does not match its key id.*peercam pair/);
  assert.ok(!(await damaged.page.evaluate(() => location.hash)).includes("k="));
  assert.deepEqual(await damaged.page.evaluate(() => window.peercamViewer.paired), []);
  assert.equal(fake.sessions().length, 3, "neither called the device");
});
