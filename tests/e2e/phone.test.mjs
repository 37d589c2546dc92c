// The viewer as a doorbell app on a phone, against the real daemon (test
// source, sealed, a paired viewer), real Mosquitto and headless Chromium at
// phone and desktop sizes: nothing wider than the screen, the picture
// decoding, the talk control on the first screen, a ring opening the call
// screen whose Answer leads to talking on the device's speaker, an axe-core
// accessibility check in light and dark, and screenshots saved as
// artifacts. It prints (bench-style, not asserted) how long a ring takes to
// show a picture on an idle page and on a page opened by a notification
// click, and how much the first load transfers.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  alsaBench, e2eTest, freePort, freshNames, launchBrowser, pairViewer, ring, startDaemon, startMosquitto, talkState, waitFor, waitForFrames, waitForState,
} from "./lib.mjs";

const ARTIFACTS = process.env.PEERCAM_ARTIFACTS ?? new URL("../../target/e2e-artifacts", import.meta.url).pathname;
const AXE = new URL("./node_modules/axe-core/axe.min.js", import.meta.url).pathname;

const PHONE = { isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
/** The other phone widths the layout must fit, checked on the 360x740 phone. */
const OTHER_WIDTHS = [320, 430];
const SIZES = [
  { name: "360x740", viewport: { width: 360, height: 740 }, ...PHONE },
  { name: "390x844", viewport: { width: 390, height: 844 }, ...PHONE },
  { name: "1280x800", viewport: { width: 1280, height: 800 } },
];
/** Sideways on the 390x844 phone. */
const LANDSCAPE = { width: 844, height: 390 };
/** What the speaker must reach once the viewer talks (Chromium's fake microphone is a loud beep; silence stays below 0.0005). */
const TALK_RMS = 0.005;
/** axe-core impacts this page must not have. */
const BLOCKING_IMPACTS = ["serious", "critical"];

/**
 * Opens `url` in a new context of `browser` with `options` (viewport,
 * touch, colour scheme); axe needs the daemon's CSP bypassed to be
 * injected. Optionally counts what the first load transfers through CDP.
 */
async function openPhone(browser, url, options, { measure = false } = {}) {
  const context = await browser.newContext({ ...options, bypassCSP: true });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("viewer page error:", e.message));
  const transfer = measure ? await countTransfer(page) : null;
  await page.goto(url);
  await page.waitForFunction(() => window.peercamViewer !== undefined, null, { timeout: 10000 });
  return { context, page, transfer };
}

/** Sums, over every request of `page`, the bytes on the wire (`encodedDataLength`) and the bodies' decoded size. */
async function countTransfer(page) {
  const cdp = await page.context().newCDPSession(page);
  const totals = { requests: 0, encoded: 0, decoded: 0 };
  cdp.on("Network.dataReceived", ({ dataLength }) => { totals.decoded += dataLength; });
  cdp.on("Network.loadingFinished", ({ encodedDataLength }) => {
    totals.requests += 1;
    totals.encoded += encodedDataLength;
  });
  await cdp.send("Network.enable");
  return totals;
}

/** Waits until `page` decodes frames, and they keep increasing. */
async function decoding(page) {
  const first = await waitForFrames(page, 10, 40000);
  return waitForFrames(page, first.stats.framesDecoded + 10, 10000);
}

/** What reaches past the window's right (or left) edge: the document's scroll width and every rendered element that does. */
function overflow(page) {
  return page.evaluate(() => {
    const width = window.innerWidth;
    const past = [];
    for (const el of document.querySelectorAll("body *")) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (r.right > width + 0.5 || r.left < -0.5) past.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""} [${Math.round(r.left)}, ${Math.round(r.right)}]`);
    }
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth: width, past, bodyOverflow: window.peercamViewer.bodyOverflow };
  });
}

async function assertNoOverflow(page, what) {
  const o = await overflow(page);
  assert.ok(o.scrollWidth <= o.innerWidth, `${what}: the page is ${o.scrollWidth} px wide in a ${o.innerWidth} px window`);
  assert.deepEqual(o.past, [], `${what}: elements past the window's edge`);
  assert.ok(o.bodyOverflow <= 0, `${what}: peercamViewer.bodyOverflow ${o.bodyOverflow}`);
}

/** The talk control's box, without scrolling: it must be on the first screen. */
async function assertTalkOnFirstScreen(page, what) {
  const box = await page.evaluate(() => {
    const r = document.getElementById("talk").getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, height: r.height, innerHeight: window.innerHeight, scrollY: window.scrollY };
  });
  assert.equal(box.scrollY, 0, `${what}: not scrolled`);
  assert.ok(box.top >= 0 && box.bottom <= box.innerHeight, `${what}: the talk control [${box.top}, ${box.bottom}] is within the ${box.innerHeight} px screen`);
  assert.ok(box.height >= 56, `${what}: the talk control is ${box.height} px tall`);
}

async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `phone-${name}.png`);
  await page.screenshot({ path });
  console.log(`screenshot: ${path}`);
}

/** Runs axe-core on `page`; asserts no serious or critical violation. */
async function assertAccessible(page, what) {
  if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ["violations"] })).violations
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary}`) })));
  const blocking = violations.filter((v) => BLOCKING_IMPACTS.includes(v.impact));
  assert.deepEqual(blocking, [], `${what}: axe-core found ${JSON.stringify(blocking, null, 1)}`);
  console.log(`axe-core, ${what}: no serious or critical violations (${violations.length} lesser: ${violations.map((v) => `${v.id} (${v.impact})`).join(", ") || "none"})`);
}

/** Waits for the call screen and the first frame of its call; resolves with that frame's wall-clock time. */
function callScreenFrame(page, timeoutMs = 30000) {
  return waitFor("the call screen with a picture", () => page.evaluate(() => {
    const v = window.peercamViewer;
    return v.callScreen && v.firstFrameAt !== null && v.stats.framesDecoded > 0 ? v.firstFrameAt : null;
  }), timeoutMs, 20);
}

e2eTest("the viewer as a doorbell app: phone sizes, the call screen, answer and talk, accessibility", async (cleanup, t) => {
  const broker = await startMosquitto(cleanup);
  const names = freshNames();
  const bench = alsaBench(cleanup, { input: "silence", talkback: true });
  const httpPort = await freePort();
  const daemon = await startDaemon(cleanup, {
    brokerUrl: broker.tcpUrl,
    ...names,
    width: 320,
    height: 240,
    bitrateKbps: 300,
    httpPort,
    viewerBrokerUrl: broker.wsUrl,
    audio: bench,
    security: `mode = "sealed"\nkeys_file = "viewers.toml"\nviewer_url = "http://127.0.0.1:${httpPort}/"`,
  });
  const { link } = pairViewer(daemon, "alice");
  await waitFor("the daemon to take the key", () => /paired viewers changed: 1 paired now/.test(daemon.log), 5000, 50);
  const browser = await launchBrowser(cleanup);
  const numbers = {};

  const phone = await openPhone(browser, link, SIZES[1], { measure: true });
  const { page } = phone;
  await t.test("390x844: the paired viewer decodes, fits the screen, talks from the first screen, and passes axe-core in light and dark", async () => {
    const s = await decoding(page);
    assert.equal(s.stats.sealed, true);
    assert.equal(await page.evaluate(() => window.peercamViewer.sealed), true);
    assert.ok(await page.isVisible("#video"));
    assert.equal(await page.evaluate(() => document.getElementById("manual").open), false, "a paired doorbell: Connect manually is collapsed");
    numbers.transfer = { ...phone.transfer };
    await assertNoOverflow(page, "390x844");
    await assertTalkOnFirstScreen(page, "390x844");
    await screenshot(page, "390x844");
    await assertAccessible(page, "390x844, light");
    await page.emulateMedia({ colorScheme: "dark" });
    await assertAccessible(page, "390x844, dark");
    await screenshot(page, "390x844-dark");
    await page.emulateMedia({ colorScheme: "light" });
  });

  await t.test("844x390, sideways: nothing wider than the screen", async () => {
    await page.setViewportSize(LANDSCAPE);
    await waitFor("the landscape layout", () => page.evaluate(() => window.innerWidth === 844), 5000);
    await assertNoOverflow(page, "844x390");
    await screenshot(page, "844x390");
    await page.setViewportSize(SIZES[1].viewport);
  });

  await t.test("a ring opens the call screen on an idle page; Answer, then holding talk, reaches the device's speaker", async () => {
    await page.click("#hangup");
    await waitForState(page, "ended", 10000);
    assert.equal((await page.evaluate(() => window.peercamViewer.situation)).kind, "idle");
    const rangAt = Date.now();
    ring(daemon);
    const shownAt = await callScreenFrame(page);
    numbers.idle = Math.round(shownAt - rangAt);
    const opened = await page.evaluate(() => ({
      focus: document.activeElement?.id,
      dialog: document.getElementById("ring").getAttribute("aria-modal"),
      muted: window.peercamViewer.audio.muted,
      rings: window.peercamViewer.ringLog.length,
      title: document.getElementById("ring-title").textContent,
    }));
    assert.deepEqual(opened, { focus: "answer", dialog: "true", muted: true, rings: 1, title: "E2E camera" });
    assert.ok(await page.isVisible("#ring video"), "the live picture is on the call screen");
    await assertNoOverflow(page, "390x844, call screen");
    await screenshot(page, "390x844-call-screen");
    await assertAccessible(page, "390x844, call screen");

    await waitForState(page, "connected", 20000);
    const unheld = bench.playedRms();
    assert.ok(unheld < 0.0005, `nobody holds the floor: the speaker is silent (RMS ${unheld})`);
    await page.click("#answer");
    await waitFor("the call screen to close onto the call, sound on", () => page.evaluate(() => {
      const v = window.peercamViewer;
      return !v.callScreen && !v.audio.muted && document.activeElement?.id === "talk";
    }), 10000);
    await waitFor("the talk control to be ready", async () => !(await page.isDisabled("#talk")), 10000);
    await assertTalkOnFirstScreen(page, "390x844, answered");
    const talk = await page.locator("#talk").boundingBox();
    await page.mouse.move(talk.x + talk.width / 2, talk.y + talk.height / 2);
    await page.mouse.down();
    await waitFor("the floor to be ours", async () => (await talkState(page)).holding, 10000);
    assert.match(await page.textContent("#talk"), /You are talking/);
    await waitFor("the speaker to play the viewer's voice", () => bench.playedRms() > TALK_RMS, 15000, 250);
    console.log(`talk-back after Answer: the device's speaker RMS ${bench.playedRms().toFixed(4)} (before: ${unheld.toFixed(6)})`);
    await page.mouse.up();
    await waitFor("the floor to be let go on release", async () => !(await talkState(page)).holding, 10000);
  });

  await t.test("a page opened from a ring notification (#ring, the stored pairing only) opens the call screen with a picture", async () => {
    await phone.page.close();
    const rangAt = Date.now();
    ring(daemon);
    const fresh = await phone.context.newPage();
    fresh.on("pageerror", (e) => console.error("viewer page error:", e.message));
    await fresh.goto(`${daemon.url}#ring`);
    await fresh.waitForFunction(() => window.peercamViewer !== undefined, null, { timeout: 10000 });
    const shownAt = await callScreenFrame(fresh);
    numbers.notification = Math.round(shownAt - rangAt);
    assert.equal(await fresh.evaluate(() => location.hash), "", "the marker leaves the address");
    await phone.context.close();
  });

  await t.test("360x740 (and 320 and 430 px wide): decodes, fits the screen, talk control on the first screen", async () => {
    const { context, page: small } = await openPhone(browser, link, SIZES[0]);
    await decoding(small);
    await assertNoOverflow(small, "360x740");
    await assertTalkOnFirstScreen(small, "360x740");
    await screenshot(small, "360x740");
    for (const width of OTHER_WIDTHS) {
      await small.setViewportSize({ width, height: SIZES[0].viewport.height });
      await waitFor(`a ${width} px window`, () => small.evaluate((w) => window.innerWidth === w, width), 5000);
      await assertNoOverflow(small, `${width}x740`);
      await assertTalkOnFirstScreen(small, `${width}x740`);
    }
    await context.close();
  });

  await t.test("1280x800: decodes, fits; the stats overlay is hidden by its toggle, and stays hidden on the next visit", async () => {
    const { context, page: desktop } = await openPhone(browser, link, SIZES[2]);
    await decoding(desktop);
    await assertNoOverflow(desktop, "1280x800");
    await assertTalkOnFirstScreen(desktop, "1280x800");
    await screenshot(desktop, "1280x800");
    assert.ok(await desktop.isVisible("#stats"));
    await desktop.click("#stats-toggle");
    assert.equal(await desktop.getAttribute("#stats-toggle", "aria-pressed"), "false");
    assert.ok(await desktop.isHidden("#stats"));
    await desktop.reload();
    await decoding(desktop);
    assert.ok(await desktop.isHidden("#stats"), "remembered");
    await context.close();
  });

  await t.test("a phone with no pairing: Connect manually is open and the page says what to do; offline, it says so", async () => {
    const { context, page: fresh } = await openPhone(browser, daemon.url, SIZES[1]);
    const opened = await fresh.evaluate(() => ({ manual: document.getElementById("manual").open, situation: window.peercamViewer.situation }));
    assert.equal(opened.manual, true);
    assert.equal(opened.situation.kind, "setup");
    assert.match(opened.situation.advice, /pairing link/);
    await assertNoOverflow(fresh, "390x844, no pairing");
    await screenshot(fresh, "390x844-setup");
    await assertAccessible(fresh, "390x844, no pairing, form open");
    await context.setOffline(true);
    await waitFor("the page to see the network gone", async () => (await fresh.evaluate(() => window.peercamViewer.situation.kind)) === "network-offline", 5000);
    assert.match(await fresh.textContent("#situation"), /This phone is offline/);
    await context.close();
  });

  const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
  console.log([
    "phone viewer (sealed, 320x240 test source, loopback):",
    `  (a) ring → first frame on the call screen, idle page:        ${numbers.idle} ms`,
    `  (b) ring → first frame, page opened fresh with #ring:         ${numbers.notification} ms`,
    `  (c) first load: ${numbers.transfer.requests} requests, ${kb(numbers.transfer.encoded)} transferred, ${kb(numbers.transfer.decoded)} uncompressed`,
  ].join("\n"));
});
