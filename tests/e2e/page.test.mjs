// The viewer page itself: it works under the Content-Security-Policy the
// daemon is to send, keeps the broker password out of the address and the
// history, and its device list is a listbox the keyboard can drive.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import http from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { e2eTest, freePort, freshNames, launchBrowser, mqttRecorder, scratchDir, startDaemon, startMosquitto, viewerUrl, waitFor, waitForFrames, waitForState } from "./lib.mjs";

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; "
  + "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/** A loopback HTTP proxy to the daemon's viewer that adds CSP to every response; resolves with its port. */
async function cspProxy(cleanup, daemon) {
  const port = await freePort();
  const proxy = http.createServer((req, res) => {
    const upstream = http.get({ host: "127.0.0.1", port: daemon.httpPort, path: req.url, agent: false }, (answer) => {
      res.writeHead(answer.statusCode, { ...answer.headers, "content-security-policy": CSP });
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
  });
  await new Promise((resolve) => proxy.listen(port, "127.0.0.1", resolve));
  cleanup.push(() => new Promise((resolve) => {
    proxy.closeAllConnections();
    proxy.close(resolve);
  }));
  return port;
}

/** What the page has seen: CSP violations, its address, its history length, the device list. */
function pageFacts(page) {
  return page.evaluate(() => ({
    violations: window.cspViolations,
    hash: location.hash,
    historyLength: history.length,
    options: [...document.querySelectorAll("#devices [role=option]")].map((o) => ({ id: o.dataset.id, selected: o.getAttribute("aria-selected") })),
    activeDescendant: document.getElementById("devices").getAttribute("aria-activedescendant"),
  }));
}

e2eTest("under the daemon's CSP the viewer logs in with the link's password, never keeps it in the address, and lists devices for the keyboard", async (cleanup) => {
  const dir = scratchDir(cleanup);
  const passwd = join(dir, "passwd");
  writeFileSync(passwd, "");
  execFileSync("mosquitto_passwd", ["-b", passwd, "viewer", "viewer pass"]);
  const broker = await startMosquitto(cleanup, { extraConfig: `allow_anonymous true\npassword_file ${passwd}` });
  const names = freshNames();
  const daemon = await startDaemon(cleanup, { brokerUrl: broker.tcpUrl, ...names, width: 320, height: 240, bitrateKbps: 300 });
  // A second, offline device ("zz-" sorts after "cam-") for the keyboard to move to.
  const other = `zz-${names.device}`;
  const recorder = await mqttRecorder(cleanup, broker.tcpUrl, [`${names.prefix}/+/status`]);
  await recorder.client.publishAsync(`${names.prefix}/${other}/status`, JSON.stringify({ v: 1, online: false }), { qos: 1, retain: true });

  const port = await cspProxy(cleanup, daemon);
  const page = await (await launchBrowser(cleanup)).newPage();
  page.on("pageerror", (e) => console.error("viewer page error:", e.message));
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
  });
  const url = viewerUrl(daemon, { brokerUrl: broker.wsUrl, ...names, username: "viewer", password: "viewer pass" }).replace(`:${daemon.httpPort}/`, `:${port}/`);
  assert.match(url, /&w=viewer\+pass/);
  await page.goto(url);
  await waitForFrames(page, 30, 40000);
  const opened = await pageFacts(page);
  assert.deepEqual(opened.violations, []);
  const params = new URLSearchParams(opened.hash.slice(1));
  assert.equal(params.has("w"), false, `no password in ${opened.hash}`);
  assert.equal(params.get("u"), "viewer");
  assert.equal(params.get("d"), names.device);
  assert.equal(opened.historyLength, 2, "the address was replaced, not pushed");
  assert.equal(await page.getAttribute("#state", "role"), "status");

  await waitFor("both devices listed", async () => (await pageFacts(page)).options.length === 2, 10000);
  await page.focus("#devices");
  await page.keyboard.press("ArrowDown");
  const moved = await pageFacts(page);
  assert.deepEqual(moved.options, [{ id: names.device, selected: "false" }, { id: other, selected: "true" }]);
  assert.equal(moved.activeDescendant, `device-${other}`);
  assert.equal(new URLSearchParams(moved.hash.slice(1)).get("d"), other);
  await page.keyboard.press("Home");
  assert.deepEqual((await pageFacts(page)).options.map((o) => o.selected), ["true", "false"]);

  // Connecting from the form with a typed password: it is used, and still never in the address.
  await page.click("#broker-form summary");
  await page.fill("#pass", "wrong");
  await page.click("#connect");
  assert.equal((await waitForState(page, "error", 15000)).error.code, "broker");
  await page.fill("#pass", "viewer pass");
  await page.click("#connect");
  await waitForState(page, "connected", 30000);
  const after = await pageFacts(page);
  assert.equal(new URLSearchParams(after.hash.slice(1)).has("w"), false);
  assert.equal(after.historyLength, 2);
  assert.deepEqual(after.violations, []);
});
