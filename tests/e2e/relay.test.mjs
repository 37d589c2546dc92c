// Calls through a real TURN server: coturn on loopback, started by the
// test, is the device's `[[webrtc.ice_servers]]`; the viewer's link says
// `relay=1`, so Chromium may use relayed candidates only. The video still
// decodes, the overlay names the relayed path, and a call whose relay
// goes away restarts ICE on its own and goes on.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { canConnect, e2eTest, freePort, freshNames, launchBrowser, openViewer, scratchDir, startDaemon, startMosquitto, viewerState, viewerUrl, waitFor, waitForFrames } from "./lib.mjs";

const TURN_USER = "peercam";
const TURN_PASSWORD = "relay-e2e";
const TURN_REALM = "peercam.test";
/** How many UDP ports coturn may relay on: a random range, so parallel runs rarely collide. */
const RELAY_PORT_COUNT = 50;
const RELAY_PORTS_FROM = 40000;
const RELAY_PORTS_TO = 60000;
/** How long coturn may take to listen. */
const TURN_START_TIMEOUT_MS = 10000;
/** Frames the viewer must decode through the relay. */
const FRAMES = 30;
/** How long the first frames may take: relay allocation, ICE, DTLS, a keyframe. */
const FRAMES_TIMEOUT_MS = 20000;
/** How long the overlay may take to name the path (stats are read every second). */
const PATH_TIMEOUT_MS = 5000;
/**
 * How long a call may take to restart ICE and decode again once its relay
 * is gone. Over TCP the closed connection fails the path at once and the
 * viewer restarts then; should coturn not be back by that restart's
 * allocation, the next restart comes 8 s later (RESTART_TIMEOUT_MS).
 */
const RECOVERY_TIMEOUT_MS = 15000;

/**
 * coturn on 127.0.0.1 (STUN and TURN over UDP and TCP on one free port),
 * long-term credentials, relaying to loopback peers. `kill()` SIGKILLs it,
 * dropping every allocation; `start()` brings it back on the same port.
 */
async function startCoturn(cleanup) {
  const dir = scratchDir(cleanup);
  const port = await freePort();
  const minPort = randomInt(RELAY_PORTS_FROM, RELAY_PORTS_TO - RELAY_PORT_COUNT);
  const conf = join(dir, "turnserver.conf");
  writeFileSync(conf, [
    "listening-ip=127.0.0.1",
    "relay-ip=127.0.0.1",
    `listening-port=${port}`,
    `min-port=${minPort}`,
    `max-port=${minPort + RELAY_PORT_COUNT - 1}`,
    "lt-cred-mech",
    `user=${TURN_USER}:${TURN_PASSWORD}`,
    `realm=${TURN_REALM}`,
    "fingerprint",
    "no-tls",
    "no-dtls",
    "no-cli",
    "allow-loopback-peers",
    "log-file=stdout",
    "simple-log",
    `pidfile=${join(dir, "pid")}`,
    `userdb=${join(dir, "db.sqlite")}`,
    "",
  ].join("\n"));
  const turn = {
    port,
    proc: null,
    log: "",
    async start() {
      this.proc = spawn("turnserver", ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
      this.proc.stdout.on("data", (d) => { this.log += d; });
      this.proc.stderr.on("data", (d) => { this.log += d; });
      const proc = this.proc;
      await waitFor("coturn to listen", async () => {
        if (proc.exitCode !== null) throw new Error(`turnserver exited with ${proc.exitCode}`);
        return canConnect(port);
      }, TURN_START_TIMEOUT_MS, 50);
    },
    async kill() {
      const proc = this.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await exited;
    },
  };
  cleanup.push(() => turn.kill());
  cleanup.logs.push(() => `coturn:\n${turn.log}`);
  await turn.start();
  return turn;
}

/** The device's `[webrtc]` lines: coturn at `url`, with its credentials. */
function iceServersConfig(url) {
  return `[[webrtc.ice_servers]]\nurls = ["${url}"]\nusername = "${TURN_USER}"\ncredential = "${TURN_PASSWORD}"\n`;
}

/** Broker, coturn, a daemon using `turnUrl(port)`, and a relay-only viewer that decodes; resolves with them all. */
async function relayedCall(cleanup, turnUrl) {
  const broker = await startMosquitto(cleanup);
  const turn = await startCoturn(cleanup);
  const names = freshNames();
  const daemon = await startDaemon(cleanup, {
    brokerUrl: broker.tcpUrl, ...names, width: 320, height: 240, bitrateKbps: 300, webrtc: iceServersConfig(turnUrl(turn.port)),
  });
  const browser = await launchBrowser(cleanup);
  const url = `${viewerUrl(daemon, { brokerUrl: broker.wsUrl, ...names })}&relay=1`;
  const page = await openViewer(browser, daemon, names, url);
  const decoded = await waitForFrames(page, FRAMES, FRAMES_TIMEOUT_MS);
  return { turn, daemon, page, decoded };
}

/** Waits until the overlay's stats name the path; resolves with the page's state. */
function waitForPath(page) {
  return waitFor("the overlay to name the path", async () => {
    const s = await viewerState(page);
    return s.stats.localCandidateType && s.stats.remoteCandidateType ? s : null;
  }, PATH_TIMEOUT_MS, 100);
}

const TURN_URLS = {
  udp: (port) => `turn:127.0.0.1:${port}`,
  tcp: (port) => `turn:127.0.0.1:${port}?transport=tcp`,
};

for (const [transport, turnUrl] of Object.entries(TURN_URLS)) {
  e2eTest(`relay only, TURN over ${transport}: the viewer decodes through coturn and its overlay says relay(${transport})`, async (cleanup) => {
    const { page, decoded } = await relayedCall(cleanup, turnUrl);
    assert.equal(decoded.state, "connected");
    assert.ok(decoded.stats.framesDecoded >= FRAMES);
    const { stats } = await waitForPath(page);
    assert.equal(stats.localCandidateType, "relay", "relay=1 leaves Chromium only relayed candidates");
    assert.equal(stats.localRelayProtocol, transport);
    assert.equal(stats.iceRestarts, 0);
    const overlay = await page.textContent("#stats");
    assert.match(overlay, new RegExp(`relay\\(${transport}\\) ↔ (host|srflx|prflx|relay)`), overlay);
  });
}

// A TCP relay's loss is seen at once (the connection closes), which keeps
// this fast; the grace period for a merely `disconnected` path is unit-tested.
e2eTest("the relay goes away mid-call: the viewer restarts ICE on the same session and decodes again", async (cleanup) => {
  const { turn, page, decoded } = await relayedCall(cleanup, TURN_URLS.tcp);
  await turn.kill();
  await turn.start();
  const recovered = await waitFor("the call to restart ICE and decode again", async () => {
    const s = await viewerState(page);
    if (s.state === "error" || s.state === "ended") throw new Error(`viewer ${s.state}: ${JSON.stringify(s.error)}`);
    return s.state === "connected" && s.stats.iceRestarts > 0 && s.stats.framesDecoded > decoded.stats.framesDecoded + FRAMES ? s : null;
  }, RECOVERY_TIMEOUT_MS, 200);
  assert.equal(recovered.sessionId, decoded.sessionId, "the same session");
  assert.equal(recovered.stats.localCandidateType, "relay");
  assert.match(await page.textContent("#stats"), /· \d ICE restarts?/);
});
