// The TLS bench without the daemon: a throwaway CA's certificate on
// Mosquitto's TLS and WSS listeners and on an https server of the viewer;
// mqtt.js in node connects over TLS trusting the CA, and the viewer page,
// loaded over https in Chromium, reaches the broker over wss and lists a
// device whose status node published.
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { e2eTest, freshNames, launchBrowser, makeTestCa, serveViewerHttps, startMosquitto, waitFor } from "./lib.mjs";

e2eTest("node over mqtts and the https viewer over wss reach a broker whose certificate a throwaway CA signed", async (cleanup) => {
  const tls = makeTestCa(cleanup);
  const broker = await startMosquitto(cleanup, { tls });
  const { device, prefix } = freshNames();

  const client = await mqtt.connectAsync(broker.tlsUrl, { ca: tls.ca, reconnectPeriod: 0, connectTimeout: 3000 });
  cleanup.push(() => client.endAsync(true));
  await client.publishAsync(`${prefix}/${device}/status`, JSON.stringify({ v: 1, online: true, name: "TLS bench" }), { qos: 1, retain: true });
  await assert.rejects(mqtt.connectAsync(broker.tlsUrl, { reconnectPeriod: 0, connectTimeout: 3000 }), /self[- ]signed|unable to (get|verify)/i, "without the CA the certificate is refused");

  const viewer = await serveViewerHttps(cleanup, tls);
  const untrusting = await (await launchBrowser(cleanup)).newPage();
  await assert.rejects(untrusting.goto(viewer.url), /ERR_CERT_AUTHORITY_INVALID/, "trust comes from the SPKI flag alone");
  const page = await (await launchBrowser(cleanup, { tls })).newPage();
  const violations = [];
  page.on("console", (message) => { if (/Content Security Policy/i.test(message.text())) violations.push(message.text()); });
  const fragment = new URLSearchParams({ v: "1", b: broker.wssUrl, p: prefix, d: device, auto: "0" });
  const response = await page.goto(`${viewer.url}#${fragment}`);
  assert.equal(response.status(), 200);
  assert.equal(new URL(page.url()).protocol, "https:");
  const seen = await waitFor("the viewer to list the device over wss", () => page.evaluate((id) => {
    const v = window.peercamViewer;
    return v?.state === "ready" && v.devices.find((d) => d.id === id) ? { devices: v.devices, secure: window.isSecureContext } : null;
  }, device), 5000);
  assert.equal(seen.devices[0].name, "TLS bench");
  assert.equal(seen.secure, true);
  assert.equal(await page.evaluate(() => document.querySelector("#broker").value), broker.wssUrl);
  assert.deepEqual(violations, []);
});
