// Sealed mode end to end, with the real daemon: Mosquitto with TLS and WSS
// listeners (a throwaway CA), the daemon on mqtts:// trusting that CA
// (`mqtt.ca_file`), sealed, serving the viewer over https, two viewers
// paired with `peercam pair`, and the viewer in headless Chromium opened
// from their pairing links. One broker, one daemon and one browser serve
// every step in turn.
import assert from "node:assert/strict";
import { keyId, keysFromKeyString, open, toBase64url } from "../../web/js/seal.js";
import {
  alsaBench, e2eTest, freePort, freshNames, launchBrowser, makeTestCa, mqttRecorder, pairViewer, peercamKeys, startDaemon, startMosquitto, talk,
  talkState, viewerState, waitFor, waitForFrames,
} from "./lib.mjs";

/** Sessions the test itself publishes on, as someone on the broker: an unsealed request, and a copy of alice's sealed offer. */
const UNSEALED_SESSION = "e2e-unsealed-request";
const MOVED_SESSION = "e2e-moved-offer-0001";

/** What the page says to a viewer without a key for a sealed camera (app.js). */
const UNPAIRED = "This camera only accepts paired viewers; open the pairing link from `peercam pair`.";

/** Content Security Policy violations any page reported (the daemon serves the viewer with its CSP). */
const cspViolations = [];

/**
 * Opens `url` in a fresh browser context (its own storage, as another
 * phone would have) and waits for the page API. The page notes when its
 * video showed its first frame (`window.e2eFirstFrameAt`, ms since the
 * navigation started).
 */
async function openPage(browser, url) {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    addEventListener("loadeddata", () => { window.e2eFirstFrameAt ??= performance.now(); }, true);
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("viewer page error:", e.message));
  page.on("console", (message) => { if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text()); });
  await gotoViewer(page, url);
  return page;
}

/** Navigates `page` to `url` and waits for the page API. */
async function gotoViewer(page, url) {
  await page.goto(url);
  await page.waitForFunction(() => window.peercamViewer !== undefined, null, { timeout: 10000 });
}

/** Waits for the first frame and reads the call's times: navigation → first frame, offer → first frame, offer → connected (ms). */
async function firstFrameTimes(page) {
  await page.waitForFunction(() => window.e2eFirstFrameAt !== undefined && window.peercamViewer.stats.ttffMs !== null, null, { timeout: 30000, polling: 50 });
  return page.evaluate(() => ({
    navigationMs: Math.round(window.e2eFirstFrameAt),
    offerMs: window.peercamViewer.stats.ttffMs,
    connectMs: window.peercamViewer.stats.connectMs,
  }));
}

/** Waits until the viewer stops with an error; resolves with its state. */
function waitForError(page, what, timeoutMs = 10000) {
  return waitFor(what, async () => {
    const s = await viewerState(page);
    return s.state === "error" ? s : null;
  }, timeoutMs);
}

/** The `#` parameters of `url`. */
const fragment = (url) => Object.fromEntries(new URLSearchParams(new URL(url).hash.slice(1)));

/** `key`'s `kid.secret` with the key id's last digit changed: a damaged link. */
function damagedKey(key) {
  const [kid, secret] = key.split(".");
  return `${kid.slice(0, -1)}${kid.endsWith("0") ? "1" : "0"}.${secret}`;
}

/** The payloads `observer` saw on `topic`, each with `body`, its plaintext opened with `direction` (null when it does not open). */
async function opened(observer, topic, direction) {
  const seen = observer.messages.filter((m) => m.topic === topic);
  return Promise.all(seen.map(async ({ text }) => {
    const plaintext = await open(text, topic, direction);
    return { text, body: plaintext === null ? null : JSON.parse(plaintext) };
  }));
}

/** A subtest of `t` that stops the whole test when it fails (later steps build on it). */
async function step(t, name, fn) {
  let failure = null;
  await t.test(name, async () => {
    try {
      await fn();
    } catch (e) {
      failure = e;
      throw e;
    }
  });
  if (failure) throw failure;
}

e2eTest("sealed mode with the real daemon over mqtts/wss/https, two paired viewers in Chromium", async (cleanup, t) => {
  const tls = makeTestCa(cleanup);
  const broker = await startMosquitto(cleanup, { tls });
  const { device, prefix } = freshNames();
  const base = `${prefix}/${device}`;
  // The broker's view of everything, from the first message on.
  const observer = await mqttRecorder(cleanup, broker.tcpUrl, ["#"]);
  const bench = alsaBench(cleanup, { input: "silence", talkback: true });
  const httpPort = await freePort();
  const daemonUrl = `https://127.0.0.1:${httpPort}/`;
  const daemon = await startDaemon(cleanup, {
    brokerUrl: broker.tlsUrl,
    mqttExtra: `ca_file = "${tls.caFile}"`,
    device,
    prefix,
    width: 320,
    height: 240,
    bitrateKbps: 300,
    httpPort,
    httpTls: tls,
    viewerBrokerUrl: broker.wssUrl,
    audio: bench,
    security: `mode = "sealed"\nkeys_file = "viewers.toml"\nviewer_url = "${daemonUrl}"`,
  });
  assert.equal(daemon.url, daemonUrl);
  const alice = pairViewer(daemon, "alice");
  const bob = pairViewer(daemon, "bob");
  await waitFor("the daemon to take both keys", () => /paired viewers changed: 2 paired now/.test(daemon.log), 5000, 50);
  assert.match(daemon.log, /MQTT connected to mqtts:\/\/127\.0\.0\.1/);
  const status = await observer.waitLatest(`${base}/status`, (s) => s.online, "the sealed status");
  assert.equal(status.sealed, true);
  assert.match(status.nonce, /^[A-Za-z0-9_-]{22}$/);
  const listed = peercamKeys(daemon);
  assert.match(listed, /^alice {2}key [0-9a-f]{16} {2}paired /m);
  assert.match(listed, /^bob {2}key [0-9a-f]{16} {2}paired /m);

  const aliceKey = fragment(alice.link).k;
  const bobKey = fragment(bob.link).k;
  const kids = { alice: aliceKey.split(".")[0], bob: bobKey.split(".")[0] };
  const browser = await launchBrowser(cleanup, { tls });
  const pages = {};
  const times = {};

  await step(t, "alice's pairing link opens the https viewer: sealed video over wss, she holds the floor and the speaker plays her; bob sees her hold it", async () => {
    assert.ok(alice.link.startsWith(`${daemonUrl}#v=1&`), alice.link);
    assert.deepEqual(fragment(alice.link), { v: "1", b: broker.wssUrl, p: prefix, d: device, k: aliceKey, n: "alice" });
    assert.match(aliceKey, /^[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);

    pages.alice = await openPage(browser, alice.link);
    times.sealedFirst = await firstFrameTimes(pages.alice);
    const a = await waitForFrames(pages.alice, 10, 30000);
    assert.equal(a.stats.sealed, true);
    const facts = await pages.alice.evaluate(() => ({
      url: location.href,
      secure: isSecureContext,
      sealed: window.peercamViewer.sealed,
      paired: window.peercamViewer.paired,
      stored: localStorage.getItem("peercam.paired"),
      direction: window.peercamViewer.audio.direction,
    }));
    assert.ok(facts.url.startsWith(daemonUrl) && facts.secure, "the daemon's https origin, a secure context");
    assert.ok(!facts.url.includes("k=") && !facts.url.includes(aliceKey.split(".")[1]), `the key is out of the address bar: ${facts.url}`);
    assert.equal(facts.sealed, true);
    assert.deepEqual(facts.paired.map((p) => [p.broker, p.prefix, p.device, p.name]), [[broker.wssUrl, prefix, device, "alice"]]);
    assert.ok(facts.stored.includes(aliceKey), "the doorbell and its key are kept in localStorage");
    assert.equal(facts.direction, "sendrecv", "the microphone (Chromium's fake one) is offered");
    assert.deepEqual(cspViolations, [], "the viewer runs under the daemon's CSP");

    pages.bob = await openPage(browser, bob.link);
    await waitForFrames(pages.bob, 10, 30000);
    assert.equal((await talkState(pages.bob)).holder, null);
    const unheld = bench.playedRms();
    assert.ok(unheld < 0.0005, `nobody holds the floor: the speaker is silent (RMS ${unheld})`);

    assert.deepEqual(await talk(pages.alice, true), { granted: true, holder: "alice" });
    assert.equal((await talkState(pages.alice)).holding, true);
    const seen = await waitFor("bob to see alice take the floor", async () => {
      const floor = await talkState(pages.bob);
      return floor.holder === "alice" ? floor : null;
    }, 10000);
    assert.deepEqual(seen.events, [{ v: 1, type: "talk", holder: "alice" }]);
    assert.equal(seen.holding, false);
    assert.match(await pages.bob.textContent("body"), /alice is talking/);
    assert.deepEqual(await talk(pages.bob, true), { granted: false, holder: "alice" });
    await waitFor("the speaker to play alice's microphone", () => bench.playedRms() > 0.005, 15000, 250);
    console.log(`talk-back: the device's speaker RMS passed 0.005 (${bench.playedRms().toFixed(4)}; before alice took the floor: ${unheld.toFixed(6)})`);
    await observer.waitJson(`${base}/event`, (e) => e.type === "talk" && e.holder === "alice", "the talk event on P/D/event", 5000);
  });

  const aliceKeys = await keysFromKeyString(aliceKey);
  const bobKeys = await keysFromKeyString(bobKey);
  const replayed = [];
  await step(t, "the broker can neither replay alice's sealed offer on her call nor move it to another session", async () => {
    const { sessionId, stats } = await viewerState(pages.alice);
    const inTopic = `${base}/in/${sessionId}`;
    const outTopic = `${base}/out/${sessionId}`;
    const offer = (await opened(observer, inTopic, aliceKeys.viewerToDevice)).find((m) => m.body?.type === "offer");
    assert.ok(offer, "alice's offer, sealed with her key");
    const answered = observer.messages.filter((m) => m.topic === outTopic).length;
    replayed.push(offer.text);
    await observer.publish(inTopic, offer.text);
    await observer.publish(`${base}/in/${MOVED_SESSION}`, offer.text);
    const refusal = await observer.waitJson(`${base}/out/${MOVED_SESSION}`, () => true, "the moved offer to be refused", 5000);
    assert.equal(refusal.code, "unauthorized", "sealed for another topic, it does not open");
    // The daemon handles one session's payloads in order: the replay was dealt with before the moved copy.
    assert.equal(observer.messages.filter((m) => m.topic === outTopic).length, answered, "the replayed offer got no answer");
    const s = await waitForFrames(pages.alice, stats.framesDecoded + 30, 10000);
    assert.equal(s.sessionId, sessionId);
    assert.equal(s.state, "connected", "alice's call went on");
  });

  await step(t, "refused: a viewer without a key, an unsealed request, a made-up key, and bob once revoked (alice watches on)", async () => {
    const plain = new URLSearchParams({ v: "1", b: broker.wssUrl, p: prefix, d: device });
    const unpaired = await openPage(browser, `${daemonUrl}#${plain}`);
    const u = await waitForError(unpaired, "the page without a key to refuse itself");
    assert.deepEqual(u.error, { code: "unpaired", message: UNPAIRED });
    assert.equal(u.sessionId, null, "it did not call");
    await unpaired.context().close();

    // An unsealed request straight onto the broker: one unsealed refusal, however often asked.
    await observer.publish(`${base}/in/${UNSEALED_SESSION}`, JSON.stringify({ v: 1, type: "ice-servers" }));
    await observer.publish(`${base}/in/${UNSEALED_SESSION}`, JSON.stringify({ v: 1, type: "ice-servers" }));
    const raw = await observer.waitJson(`${base}/out/${UNSEALED_SESSION}`, () => true, "the daemon to refuse the unsealed request", 5000);
    assert.equal(raw.type, "error");
    assert.equal(raw.code, "unauthorized");

    const secret = crypto.getRandomValues(new Uint8Array(32));
    const madeUp = `${await keyId(secret)}.${toBase64url(secret)}`;
    const refusedPage = await openPage(browser, `${daemonUrl}#${new URLSearchParams({ v: "1", b: broker.wssUrl, p: prefix, d: device, k: madeUp, n: "mallory" })}`);
    const m = await waitForError(refusedPage, "the made-up key to be refused");
    assert.equal(m.error.code, "unauthorized");
    assert.equal(m.error.message, "The camera does not accept this viewer's key — it may have been revoked. Pair again with `peercam pair`.");
    assert.deepEqual((await refusedPage.evaluate(() => window.peercamViewer.paired)).map((p) => p.name), ["mallory"], "an unsealed refusal is a hint: the key is kept");
    await refusedPage.context().close();

    const before = (await viewerState(pages.alice)).stats.framesDecoded;
    const revokedAt = Date.now();
    assert.match(peercamKeys(daemon, ["revoke", "bob"]), /Revoked "bob"/);
    const b = await waitFor("bob's call to end", async () => {
      const s = await viewerState(pages.bob);
      return s.state === "ended" || s.state === "error" ? s : null;
    }, 5000, 50);
    console.log(`revocation: bob's page left the call ${Date.now() - revokedAt} ms after \`peercam keys revoke bob\``);
    assert.equal(b.state, "ended");
    assert.match(b.error.message, /the device ended the call: .*revoked/, JSON.stringify(b.error));
    assert.match(daemon.log, /its viewer was revoked/);
    assert.doesNotMatch(peercamKeys(daemon), /^bob /m);
    const a = await waitForFrames(pages.alice, before + 30, 10000);
    assert.equal(a.state, "connected", "alice's call goes on");
    assert.equal((await talkState(pages.alice)).holding, true, "and she keeps the floor");

    await pages.bob.evaluate(() => window.peercamViewer.call());
    const again = await waitForError(pages.bob, "bob's new call to be refused");
    assert.equal(again.error.code, "unauthorized");
  });

  await step(t, "the pairing link round-trips: a bare page calls the kept doorbell sealed; a damaged link is refused", async () => {
    const damaged = await openPage(browser, `${daemonUrl}#${new URLSearchParams({ ...fragment(alice.link), k: damagedKey(aliceKey), n: "eve" })}`);
    const d = await waitForError(damaged, "the damaged link to be refused");
    assert.equal(d.error.code, "pairing");
    assert.equal(d.error.message, "This pairing link is damaged: its key does not match its key id. Ask for a new link with `peercam pair`.");
    assert.ok(!(await damaged.evaluate(() => location.href)).includes("k="), "its key leaves the address all the same");
    assert.deepEqual(await damaged.evaluate(() => window.peercamViewer.paired), []);
    await damaged.context().close();

    const firstSession = (await viewerState(pages.alice)).sessionId;
    await gotoViewer(pages.alice, daemonUrl);
    times.sealedBare = await firstFrameTimes(pages.alice);
    const s = await waitForFrames(pages.alice, 10, 30000);
    assert.notEqual(s.sessionId, firstSession);
    assert.equal(s.stats.sealed, true);
    assert.equal(await pages.alice.evaluate(() => window.peercamViewer.sealed), true);
    const sealedWith = observer.json(`${base}/in/${s.sessionId}`).map((m) => m.kid);
    assert.ok(sealedWith.length > 0 && sealedWith.every((kid) => kid === kids.alice), "the bare page called with alice's key");
  });

  await step(t, "the broker sees no SDP, candidate or address: session payloads are only {v, kid, seal}, bar one unsealed refusal per refused session", async () => {
    assert.ok(observer.messages.length > 20, `the observer saw the calls (${observer.messages.length} messages)`);
    for (const m of observer.messages) {
      for (const clear of ["v=0", "candidate", "127.0.0.1", "a=fingerprint", '"sdp"']) {
        assert.ok(!m.text.includes(clear), `${clear} in clear on ${m.topic}: ${m.text}`);
      }
      assert.doesNotMatch(m.text, /\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-f]*::[0-9a-f]*/i, `an IP address in clear on ${m.topic}`);
    }
    const sessions = new Map();
    for (const m of observer.messages) {
      const match = m.topic.match(new RegExp(`^${base}/(in|out)/([^/]+)$`));
      if (!match) continue;
      const [, direction, session] = match;
      if (!sessions.has(session)) sessions.set(session, { in: [], out: [] });
      sessions.get(session)[direction].push(JSON.parse(m.text));
    }
    const refusals = [];
    const byViewer = { alice: 0, bob: 0 };
    for (const [session, { in: sent, out: got }] of sessions) {
      if (session === MOVED_SESSION) {
        assert.deepEqual(sent.map(JSON.stringify), replayed);
      } else if (session === UNSEALED_SESSION) {
        assert.deepEqual(sent, [{ v: 1, type: "ice-servers" }, { v: 1, type: "ice-servers" }]);
      } else {
        for (const p of sent) assert.deepEqual(Object.keys(p).sort(), ["kid", "seal", "v"], `in/${session}: ${JSON.stringify(p)}`);
      }
      const kid = sent[0]?.kid;
      assert.ok(sent.every((p) => p.kid === kid), `in/${session} is one viewer's`);
      for (const p of got) {
        if (p.type === "error") {
          assert.ok(Object.keys(p).every((k) => ["v", "type", "code", "message", "re"].includes(k)), `only an error's fields: ${JSON.stringify(p)}`);
          assert.equal(p.code, "unauthorized");
          refusals.push(session);
        } else {
          assert.deepEqual(Object.keys(p).sort(), ["kid", "seal", "v"], `out/${session}: ${JSON.stringify(p)}`);
          assert.equal(p.kid, kid, `out/${session} is sealed for the viewer that called`);
        }
      }
      if (kid === kids.alice) byViewer.alice += 1;
      if (kid === kids.bob) byViewer.bob += 1;
    }
    assert.deepEqual(byViewer, { alice: 3, bob: 2 }, "alice's two calls and the moved offer, bob's call and his refused one");
    assert.equal(refusals.length, 4, `one refusal each for the unsealed request, the moved offer, the made-up key and revoked bob: ${refusals}`);
    assert.equal(new Set(refusals).size, 4, "at most one per session");
    assert.ok(refusals.includes(UNSEALED_SESSION) && refusals.includes(MOVED_SESSION));

    // Under the seals: the real signaling, each call readable with its own viewer's key only, numbered from 1 each way.
    const under = { offer: 0, answer: 0, candidates: [] };
    for (const [session, { in: sent }] of sessions) {
      const viewer = sent[0]?.kid === kids.alice ? "alice" : sent[0]?.kid === kids.bob ? "bob" : null;
      if (!viewer || session === MOVED_SESSION) continue;
      const [own, other] = viewer === "alice" ? [aliceKeys, bobKeys] : [bobKeys, aliceKeys];
      for (const [direction, topic] of [["viewerToDevice", `${base}/in/${session}`], ["deviceToViewer", `${base}/out/${session}`]]) {
        const all = await opened(observer, topic, own[direction]);
        const payloads = all.filter((m, i) => all.findIndex((first) => first.text === m.text) === i); // the replay was the original's copy
        const bodies = payloads.map((m) => m.body).filter((b) => b !== null);
        if (direction === "deviceToViewer" && bodies.length < payloads.length) {
          assert.equal(payloads.length - bodies.length, 1, `${topic}: only the unsealed refusal does not open`);
        } else {
          assert.equal(bodies.length, payloads.length, `${topic}: every payload opens with ${viewer}'s key`);
        }
        assert.deepEqual(bodies.map((b) => b.seq), bodies.map((_, i) => i + 1), `${topic}: seq counts up from 1`);
        assert.ok((await opened(observer, topic, other[direction])).every((m) => m.body === null), `${topic}: the other viewer's key opens nothing`);
        for (const b of bodies) {
          if (b.type === "offer" || b.type === "answer") {
            assert.match(b.sdp, /^v=0\r\n[\s\S]*a=fingerprint:/);
            under[b.type] += 1;
          }
          if (b.type === "candidate" && b.candidate) under.candidates.push(b.candidate);
        }
      }
    }
    assert.deepEqual({ offer: under.offer, answer: under.answer }, { offer: 3, answer: 3 }, "alice's two calls and bob's first");
    assert.ok(under.candidates.some((c) => c.includes("127.0.0.1")), "candidates with addresses travelled, sealed");
    await observer.client.endAsync(true);
  });

  await step(t, "time to first frame: sealed vs plain (printed, not asserted)", async () => {
    await pages.alice.context().close();
    await pages.bob.context().close();
    const plainNames = freshNames();
    const plainPort = await freePort();
    const plainDaemon = await startDaemon(cleanup, {
      brokerUrl: broker.tlsUrl,
      mqttExtra: `ca_file = "${tls.caFile}"`,
      ...plainNames,
      width: 320,
      height: 240,
      bitrateKbps: 300,
      httpPort: plainPort,
      httpTls: tls,
      viewerBrokerUrl: broker.wssUrl,
      audio: alsaBench(cleanup, { input: "silence", talkback: true }),
      security: `mode = "plain"\nkeys_file = "viewers.toml"`,
    });
    const page = await openPage(browser, `${plainDaemon.url}#${new URLSearchParams({ v: "1", b: broker.wssUrl, p: plainNames.prefix, d: plainNames.device })}`);
    times.plain = await firstFrameTimes(page);
    assert.equal((await viewerState(page)).stats.sealed, false);
    assert.deepEqual(cspViolations, []);
    const row = (name, { navigationMs, offerMs, connectMs }) => `  ${name.padEnd(34)} navigation→frame ${String(navigationMs).padStart(5)} ms   offer→frame ${String(offerMs).padStart(5)} ms   offer→connected ${String(connectMs).padStart(5)} ms`;
    console.log([
      "time to first frame in Chromium (https page, wss broker, 320x240):",
      row("sealed, first call (cold browser)", times.sealedFirst),
      row("sealed, bare page (warm)", times.sealedBare),
      row("plain (warm)", times.plain),
    ].join("\n"));
  });
});
