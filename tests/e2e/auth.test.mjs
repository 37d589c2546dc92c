// A broker that wants a login: the daemon over WebSocket with a password
// from a file, the viewer with the login from its link; a wrong password
// is a clear, retried error.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { e2eTest, freshNames, launchBrowser, openViewer, scratchDir, startDaemon, startMosquitto, waitFor, waitForFrames, waitForState } from "./lib.mjs";

e2eTest("ws:// broker with username and password file; wrong password is reported", async (cleanup) => {
  const dir = scratchDir(cleanup);
  const passwd = join(dir, "passwd");
  writeFileSync(passwd, "");
  execFileSync("mosquitto_passwd", ["-b", passwd, "device", "s3cret device"]);
  execFileSync("mosquitto_passwd", ["-b", passwd, "viewer", "viewer pass"]);
  const broker = await startMosquitto(cleanup, { extraConfig: `allow_anonymous false\npassword_file ${passwd}` });
  const passwordFile = join(dir, "device-password");
  writeFileSync(passwordFile, "s3cret device\n");

  const names = freshNames();
  const daemon = await startDaemon(cleanup, {
    brokerUrl: broker.wsUrl, ...names, width: 320, height: 240, bitrateKbps: 300,
    mqttExtra: `username = "device"\npassword_file = "${passwordFile}"`,
  });
  await waitFor("the daemon to log in", () => /MQTT connected/.test(daemon.log), 10000);
  const browser = await launchBrowser(cleanup);
  const page = await openViewer(browser, daemon, { brokerUrl: broker.wsUrl, ...names, username: "viewer", password: "viewer pass" });
  await waitForFrames(page, 30, 40000);

  const refused = await openViewer(browser, daemon, { brokerUrl: broker.wsUrl, ...names, username: "viewer", password: "wrong" });
  const s = await waitForState(refused, "error", 15000);
  assert.equal(s.error.code, "broker");

  const other = freshNames();
  const wrong = await startDaemon(cleanup, {
    brokerUrl: broker.tcpUrl, ...other, width: 160, height: 120, bitrateKbps: 100,
    mqttExtra: `username = "device"\npassword = "not it"`,
  });
  await waitFor("the daemon to report the refused login", () => /MQTT .*(refused|not authorized|bad user name or password)/i.test(wrong.log), 10000);
  assert.equal(wrong.proc.exitCode, null, "a refused login is retried, not fatal");
});
