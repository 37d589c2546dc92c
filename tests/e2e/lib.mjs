// The end-to-end bench: a real Mosquitto, the peercam daemon and the web
// viewer in headless Chromium, all on loopback, all started and stopped by
// the tests. Every wait is bounded. For TLS, a throwaway CA made with the
// openssl CLI signs a loopback server certificate that Mosquitto's TLS and
// WSS listeners, the daemon's https viewer and Chromium all use.
import { execFileSync, spawn } from "node:child_process";
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { extname, join, resolve, sep } from "node:path";
import { X509Certificate, createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import mqtt from "mqtt";
import { chromium, request } from "playwright-core";

export const PEERCAM_BIN = process.env.PEERCAM_BIN ?? new URL("../../target/debug/peercam", import.meta.url).pathname;
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/**
 * A web/ folder whose files the browser gets instead of the daemon's
 * embedded viewer (`PEERCAM_WEB=../../web`): viewer changes tested against
 * a daemon built before them. Unset, the daemon's own files are tested.
 */
export const PEERCAM_WEB = process.env.PEERCAM_WEB ? resolve(process.env.PEERCAM_WEB) : null;
const WEB_TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml", ".png": "image/png", ".webmanifest": "application/manifest+json",
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port nothing listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once `fn()` returns a truthy value; throws `what` after `timeoutMs`. */
export async function waitFor(what, fn, timeoutMs = 15000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

/** Whether something accepts TCP connections on loopback `port` now. */
export function canConnect(port) {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, "127.0.0.1");
    socket.once("connect", () => { socket.destroy(); resolve(true); });
    socket.once("error", () => resolve(false));
  });
}

/** A scratch directory removed by `cleanup()`. */
export function scratchDir(cleanup) {
  const dir = mkdtempSync(join(tmpdir(), "peercam-e2e-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A throwaway certificate authority and a server certificate it signed for
 * `127.0.0.1` and `localhost` (SAN IP:127.0.0.1, DNS:localhost), made with
 * the openssl CLI in a scratch directory: `{ caFile, certFile, keyFile }`
 * (PEM paths), `ca`, `cert` and `key` (their PEM text), and `spki`, the
 * base64 SHA-256 of the server certificate's public key, which Chromium's
 * `--ignore-certificate-errors-spki-list` takes (see launchBrowser).
 */
export function makeTestCa(cleanup) {
  const dir = scratchDir(cleanup);
  const caFile = join(dir, "ca.crt");
  const caKey = join(dir, "ca.key");
  const keyFile = join(dir, "server.key");
  const csr = join(dir, "server.csr");
  const certFile = join(dir, "server.crt");
  const extensions = join(dir, "server.ext");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const openssl = (...args) => execFileSync("openssl", args, { stdio: ["ignore", "pipe", "pipe"] });
  openssl("req", "-x509", ...ec, "-keyout", caKey, "-out", caFile, "-days", "2", "-subj", "/CN=peercam e2e throwaway CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  openssl("req", ...ec, "-keyout", keyFile, "-out", csr, "-subj", "/CN=localhost");
  writeFileSync(extensions, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n");
  openssl("x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial", "-out", certFile, "-days", "2", "-extfile", extensions);
  const cert = readFileSync(certFile, "utf8");
  const spkiDer = new X509Certificate(cert).publicKey.export({ type: "spki", format: "der" });
  return {
    caFile,
    certFile,
    keyFile,
    ca: readFileSync(caFile, "utf8"),
    cert,
    key: readFileSync(keyFile, "utf8"),
    spki: createHash("sha256").update(spkiDer).digest("base64"),
  };
}

/**
 * Mosquitto with a TCP and a WebSocket listener on free loopback ports;
 * with `tls` (from makeTestCa) also a TLS MQTT listener (`tlsUrl`,
 * `mqtts://`) and a WebSocket-over-TLS one (`wssUrl`, `wss://`) with its
 * server certificate. `kill()` SIGKILLs it; `start()` brings it back on
 * the same ports. It sends without Nagle's delay (`set_tcp_nodelay`), as
 * the README advises for a broker in front of peercam; `tcpNoDelay: false`
 * keeps Mosquitto's default, for benchmarks that compare the two.
 */
export async function startMosquitto(cleanup, { extraConfig = "", tls = null, tcpNoDelay = true } = {}) {
  const dir = scratchDir(cleanup);
  const tcpPort = await freePort();
  const wsPort = await freePort();
  const tlsPort = tls ? await freePort() : null;
  const wssPort = tls ? await freePort() : null;
  const certificate = tls ? [`cafile ${tls.caFile}`, `certfile ${tls.certFile}`, `keyfile ${tls.keyFile}`] : [];
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(conf, [
    "per_listener_settings false",
    "persistence false",
    `set_tcp_nodelay ${tcpNoDelay}`,
    `user ${userInfo().username}`,
    extraConfig || "allow_anonymous true",
    `listener ${tcpPort} 127.0.0.1`,
    `listener ${wsPort} 127.0.0.1`,
    "protocol websockets",
    ...(tls ? [
      `listener ${tlsPort} 127.0.0.1`,
      ...certificate,
      `listener ${wssPort} 127.0.0.1`,
      "protocol websockets",
      "socket_domain ipv4",
      ...certificate,
    ] : []),
    "",
  ].join("\n"));
  const ports = [tcpPort, wsPort, ...(tls ? [tlsPort, wssPort] : [])];
  const broker = {
    tcpPort,
    wsPort,
    tlsPort,
    wssPort,
    tcpUrl: `mqtt://127.0.0.1:${tcpPort}`,
    wsUrl: `ws://127.0.0.1:${wsPort}`,
    tlsUrl: tls ? `mqtts://127.0.0.1:${tlsPort}` : null,
    wssUrl: tls ? `wss://127.0.0.1:${wssPort}` : null,
    proc: null,
    log: "",
    async start() {
      this.proc = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
      this.proc.stdout.on("data", (d) => { this.log += d; });
      this.proc.stderr.on("data", (d) => { this.log += d; });
      const proc = this.proc;
      await waitFor("mosquitto to listen", async () => {
        if (proc.exitCode !== null) throw new Error(`mosquitto exited: ${this.log}`);
        for (const port of ports) if (!(await canConnect(port))) return false;
        return true;
      }, 10000, 50);
    },
    async kill() {
      const proc = this.proc;
      if (!proc || proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await exited;
    },
  };
  cleanup.push(() => broker.kill());
  cleanup.logs.push(() => `mosquitto:\n${broker.log}`);
  await broker.start();
  return broker;
}

/** A fresh device id and topic prefix, so tests never see each other's retained status. */
export function freshNames() {
  const tag = randomBytes(4).toString("hex");
  return { device: `cam-${tag}`, prefix: `e2e/${tag}` };
}

/**
 * Starts the daemon with the `test` source against `brokerUrl`; resolves
 * once its HTTP viewer answers. `extra` is appended to the config file.
 * `httpPort` is the viewer's port (default: a free one); with `httpTls`
 * (from makeTestCa) the daemon serves it over https with that
 * certificate. `daemon.url` is the viewer page's address.
 */
export async function startDaemon(cleanup, { brokerUrl, device, prefix, maxViewers = 4, width = 640, height = 360, fps = 30, bitrateKbps = 600, viewerBrokerUrl = null, httpPort = null, httpTls = null, mqttExtra = "", webrtc = "", audio = null, security = "", extra = "", bin = PEERCAM_BIN }) {
  const dir = scratchDir(cleanup);
  httpPort ??= await freePort();
  const config = join(dir, "peercam.toml");
  const controlSocket = join(dir, "control.sock");
  writeFileSync(config, `
[device]
id = "${device}"
name = "E2E camera"
max_viewers = ${maxViewers}

[mqtt]
broker = "${brokerUrl}"
prefix = "${prefix}"
${mqttExtra}

[video]
source = "test"
width = ${width}
height = ${height}
fps = ${fps}
bitrate_kbps = ${bitrateKbps}

[webrtc]
interfaces = ["lo"]
${webrtc}

[http]
listen = "127.0.0.1:${httpPort}"
${viewerBrokerUrl ? `broker_url = "${viewerBrokerUrl}"` : ""}
${httpTls ? `tls_cert = "${httpTls.certFile}"\ntls_key = "${httpTls.keyFile}"` : ""}

[doorbell]
control_socket = "${controlSocket}"
${audio ? audio.config : ""}

[security]
${audio ? `plain_talkback = ${audio.talkback}` : ""}
${security}
${extra}
`);
  const proc = spawn(bin, ["run", "-c", config], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info,str0m=warn,turn_client_proto=warn,stun_proto=warn", ...(audio ? audio.env : {}) },
  });
  const daemon = {
    proc,
    httpPort,
    url: `${httpTls ? "https" : "http"}://127.0.0.1:${httpPort}/`,
    config,
    controlSocket,
    log: "",
    async stop(signal = "SIGTERM") {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  proc.stdout.on("data", (d) => { daemon.log += d; });
  proc.stderr.on("data", (d) => { daemon.log += d; });
  cleanup.push(() => daemon.stop("SIGKILL"));
  cleanup.logs.push(() => `peercam ${device}:\n${daemon.log}`);
  await waitFor("the daemon's viewer page", async () => {
    if (proc.exitCode !== null) throw new Error(`peercam exited with ${proc.exitCode}:\n${daemon.log}`);
    return canConnect(httpPort);
  }, 20000, 100);
  return daemon;
}

/**
 * The daemon's sound devices without a sound card: ALSA `file` PCMs. The
 * microphone reads `input`, "speech" (espeak-ng, looped to about 40 s),
 * "silence", or a Buffer of S16 mono 48 kHz samples; the speaker's raw S16 mono 48 kHz is what `playedRms` measures.
 * The `file` plugin runs as fast as its user: with `live`, both go through
 * FIFOs that this process writes and drains at real time instead, pacing
 * the daemon like a sound card would (GStreamer's ALSA elements need that:
 * unpaced, alsasink writes silence as fast as the disk takes it). Pass the
 * result as `startDaemon`'s `audio`.
 */
export function alsaBench(cleanup, { input = "speech", live = false, talkback = true, extraAudio = "" } = {}) {
  const dir = scratchDir(cleanup);
  const mic = join(dir, "mic.s16");
  let played = join(dir, "played.s16");
  if (Buffer.isBuffer(input)) {
    writeFileSync(mic, input);
  } else if (input === "silence") {
    writeFileSync(mic, Buffer.alloc(48000 * 2 * 30));
  } else {
    const wav = join(dir, "speech.wav");
    execFileSync("espeak-ng", ["-w", wav, "Someone is at the front door. Hello, can you hear me? This is a test of the doorbell microphone."]);
    execFileSync("sox", [wav, "-r", "48000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", mic, "repeat", "5"]);
  }
  let infile = mic;
  let drained = null;
  let writer = null;
  if (live) {
    infile = join(dir, "mic.fifo");
    played = join(dir, "speaker.fifo");
    execFileSync("mkfifo", [infile, played]);
    writer = liveWriter(infile, readFileSync(mic));
    cleanup.push(writer.stop);
    drained = liveReader(played);
    cleanup.push(drained.stop);
  }
  const asoundrc = join(dir, "asoundrc");
  // The plug slaves pin 48 kHz mono S16: the `file` plugin takes whatever
  // format it is given, and its raw files are in exactly this one.
  const pinned = "format S16_LE; rate 48000; channels 1";
  writeFileSync(asoundrc, [
    `pcm.fakemic { type file; slave.pcm "null"; file "/dev/null"; infile "${infile}"; format "raw" }`,
    `pcm.fakespk { type file; slave.pcm "null"; file "${played}"; format "raw" }`,
    `pcm.mic { type plug; slave { pcm "fakemic"; ${pinned} } }`,
    `pcm.spk { type plug; slave { pcm "fakespk"; ${pinned} } }`,
    "",
  ].join("\n"));
  return {
    played,
    /** With `live`: the wall-clock time (ms) at which microphone sample 0 was "spoken". */
    micStartedAt: writer?.startedAt ?? null,
    env: { ALSA_CONFIG_PATH: `/usr/share/alsa/alsa.conf:${asoundrc}` },
    /** Whether viewers may talk back (in plain mode too: the bench is on loopback). */
    talkback,
    config: `
[audio]
enabled = true
capture_device = "mic"
playback_device = "spk"
talkback = ${talkback}
${extraAudio}
`,
    /** RMS (full scale 1.0) of what the speaker has played so far; 0 when nothing was. */
    playedRms() {
      const bytes = drained ? drained.bytes() : existsSync(played) ? readFileSync(played) : Buffer.alloc(0);
      const samples = Math.floor(bytes.length / 2);
      if (samples === 0) return 0;
      let sum = 0;
      for (let i = 0; i < samples; i++) sum += bytes.readInt16LE(i * 2) ** 2;
      return Math.sqrt(sum / samples) / 32767;
    },
  };
}

/**
 * Drains the FIFO at `path` at real time (48 kHz S16 mono), keeping the last
 * minute of it. Returns `bytes()` and the `stop` step.
 */
function liveReader(path) {
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  const keep = 48000 * 2 * 60;
  const chunks = [];
  let held = 0;
  const started = performance.now();
  let taken = 0;
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - started) / 1000) * 48000 * 2);
    while (taken < due) {
      const buf = Buffer.alloc(Math.min(due - taken, 65536));
      let n = 0;
      try {
        n = readSync(fd, buf);
      } catch {
        return;
      }
      if (n === 0) return;
      chunks.push(buf.subarray(0, n));
      held += n;
      taken += n;
      while (held - chunks[0].length > keep) held -= chunks.shift().length;
    }
  }, 10);
  return {
    bytes: () => Buffer.concat(chunks),
    stop() {
      clearInterval(timer);
      closeSync(fd);
    },
  };
}

/**
 * Writes `pcm` (S16 mono 48 kHz, looped) into the FIFO at `path` at real
 * time, each 20 ms once it has passed, as a sound card delivers a period.
 * Like a microphone nobody listens to, what falls while the FIFO has no
 * reader (or a full one) is lost, so the reader never inherits a backlog.
 * Returns the `stop` step and the wall-clock time `startedAt` of sample 0.
 */
function liveWriter(path, pcm) {
  const chunk = 960 * 2;
  const usable = pcm.length - (pcm.length % chunk);
  const started = performance.now();
  const startedAt = performance.timeOrigin + started;
  let fd = null;
  let next = 0;
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - started) / 20);
    if (fd === null) {
      try {
        fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch {
        next = due;
        return;
      }
    }
    for (; next < due; next++) {
      const at = (next * chunk) % usable;
      try {
        writeSync(fd, pcm.subarray(at, at + chunk));
      } catch (e) {
        if (e.code === "EPIPE") {
          closeSync(fd);
          fd = null;
          return;
        }
      }
    }
  }, 2);
  return {
    startedAt,
    stop() {
      clearInterval(timer);
      if (fd !== null) closeSync(fd);
    },
  };
}

/**
 * Runs `peercam pair name` with `daemon`'s config; returns the pairing
 * link it printed (the line with `#v=1&`) and its whole `output`.
 */
export function pairViewer(daemon, name, bin = PEERCAM_BIN) {
  const output = execFileSync(bin, ["pair", name, "-c", daemon.config], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const link = output.split("\n").map((line) => line.trim()).find((line) => line.includes("#v=1&"));
  if (!link) throw new Error(`peercam pair printed no link:\n${output}`);
  return { link, output };
}

/** Runs `peercam keys ...args` (none: the list; `["revoke", NAME]`) with `daemon`'s config; returns its output. */
export function peercamKeys(daemon, args = [], bin = PEERCAM_BIN) {
  return execFileSync(bin, ["keys", "-c", daemon.config, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Runs `peercam ring` against `daemon`'s control socket; resolves with its output. */
export function ring(daemon, bin = PEERCAM_BIN) {
  return execFileSync(bin, ["ring", "-c", daemon.config], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** An MQTT client on `url` that records every message on `filters`. */
export async function mqttRecorder(cleanup, url, filters) {
  const client = mqtt.connect(url, { reconnectPeriod: 500, connectTimeout: 5000 });
  cleanup.push(() => client.end(true));
  const messages = [];
  client.on("message", (topic, payload, packet) => {
    messages.push({ topic, text: payload.toString(), retain: packet.retain, at: Date.now() });
  });
  await waitFor("the recorder to connect", () => client.connected, 10000);
  await client.subscribeAsync(filters, { qos: 1 });
  return {
    client,
    messages,
    json(topic) {
      return messages.filter((m) => m.topic === topic).map((m) => {
        try { return JSON.parse(m.text); } catch { return null; }
      });
    },
    /** The latest JSON on `topic` that satisfies `pred`, waiting for it. */
    waitJson(topic, pred, what, timeoutMs = 15000) {
      return waitFor(what ?? `a message on ${topic}`, () => this.json(topic).reverse().find((m) => m && pred(m)), timeoutMs, 50);
    },
    /** Waits until the latest JSON on `topic` (a status, say) satisfies `pred`. */
    waitLatest(topic, pred, what, timeoutMs = 15000) {
      return waitFor(what ?? `the latest message on ${topic}`, () => {
        const latest = this.json(topic).at(-1);
        return latest && pred(latest) ? latest : null;
      }, timeoutMs, 50);
    },
    publish(topic, payload) {
      return client.publishAsync(topic, payload, { qos: 1 });
    },
  };
}

/**
 * Headless Chromium in its own process; `browser.pid` lets a test SIGKILL
 * one viewer. With `tls` (from makeTestCa) it trusts that server
 * certificate, for https pages and wss connections alike, by its public
 * key's hash (`--ignore-certificate-errors-spki-list`, which Chromium
 * honours with the profile directory Playwright always gives it).
 */
export async function launchBrowser(cleanup, { tls = null } = {}) {
  const server = await chromium.launchServer({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      ...(tls ? [`--ignore-certificate-errors-spki-list=${tls.spki}`] : []),
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      "--allow-loopback-in-peer-connection",
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      // A page answered by the test (PEERCAM_WEB) has no address, so Chromium would count it as public and block its loopback WebSocket.
      ...(PEERCAM_WEB ? ["--disable-features=LocalNetworkAccessChecks"] : []),
    ],
  });
  cleanup.push(() => server.kill().catch(() => {}));
  const browser = await chromium.connect(server.wsEndpoint());
  browser.pid = server.process().pid;
  if (PEERCAM_WEB) await serveWebFolder(browser, cleanup);
  return browser;
}

/**
 * Makes every context and page of `browser` get the daemon's viewer files
 * from PEERCAM_WEB, with the headers the daemon sends with them (its CSP
 * among them; asked for outside the browser, so an https daemon's test
 * certificate goes unchecked there, and the browser never meets it for
 * these files); a page from `newPage()` closes its context with it, as
 * Playwright's does.
 */
async function serveWebFolder(browser, cleanup) {
  const daemon = await request.newContext({ ignoreHTTPSErrors: true });
  cleanup.push(() => daemon.dispose());
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (options) => {
    const context = await newContext(options);
    await context.route((url) => ["127.0.0.1", "localhost"].includes(url.hostname), (route) => serveWebFile(route, daemon));
    return context;
  };
  browser.newPage = async (options) => {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    page.once("close", () => context.close().catch(() => {}));
    return page;
  };
}

/** Answers a request for a viewer file from PEERCAM_WEB with the headers `daemon` gets for it; anything else goes on to the daemon. */
async function serveWebFile(route, daemon) {
  const url = route.request().url();
  const { pathname } = new URL(url);
  const file = resolve(PEERCAM_WEB, `.${pathname === "/" ? "/index.html" : pathname}`);
  const type = WEB_TYPES[extname(file)];
  if (!type || !file.startsWith(PEERCAM_WEB + sep) || !existsSync(file) || !statSync(file).isFile()) return route.fallback();
  const response = await daemon.get(url);
  const headers = { ...response.headers(), "content-type": type };
  delete headers["content-length"];
  return route.fulfill({ status: 200, headers, body: readFileSync(file) });
}

/** The daemon's viewer URL with a pairing-link fragment. */
export function viewerUrl(daemon, { brokerUrl, prefix, device, username, password, auto = true }) {
  const fragment = new URLSearchParams({ v: "1", b: brokerUrl, p: prefix, d: device });
  if (username) fragment.set("u", username);
  if (password) fragment.set("w", password);
  if (!auto) fragment.set("auto", "0");
  return `http://127.0.0.1:${daemon.httpPort}/#${fragment}`;
}

/** Opens `url` (default: `viewerUrl(daemon, link)`) and waits for the page API. */
export async function openViewer(browser, daemon, link, url = viewerUrl(daemon, link)) {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("viewer page error:", e.message));
  await page.goto(url);
  await page.waitForFunction(() => window.peercamViewer !== undefined, null, { timeout: 10000 });
  return page;
}

/** The viewer page's exposed state: `state`, `error`, `sessionId`, `stats`, `devices`. */
export function viewerState(page) {
  return page.evaluate(() => {
    const v = window.peercamViewer;
    return { state: v.state, error: v.error, sessionId: v.sessionId, stats: v.stats, devices: v.devices };
  });
}

/** Waits until the viewer reaches `state`; resolves with its exposed state. */
export function waitForState(page, state, timeoutMs = 15000) {
  return waitFor(`the viewer to be ${state}`, async () => {
    const s = await viewerState(page);
    return s.state === state ? s : null;
  }, timeoutMs, 100);
}

/** Waits until the page has decoded at least `frames` frames (fails fast on an error state). */
export async function waitForFrames(page, frames, timeoutMs = 30000) {
  return waitFor(`${frames} decoded frames`, async () => {
    const s = await viewerState(page);
    if (s.state === "error" || s.state === "ended") throw new Error(`viewer ${s.state}: ${JSON.stringify(s.error)}`);
    return s.stats.framesDecoded >= frames ? s : null;
  }, timeoutMs, 200);
}

/** The viewer's talk state (`window.peercamViewer.talk`). */
export function talkState(page) {
  return page.evaluate(() => structuredClone(window.peercamViewer.talk));
}

/** Asks for (or releases) the floor and waits for the device's `talk` reply. */
export async function talk(page, on) {
  const before = (await talkState(page)).lastReply;
  await page.evaluate((on) => window.peercamViewer.setTalk(on), on);
  return waitFor(`a talk reply to talk ${on}`, async () => {
    const t = await talkState(page);
    return t.lastReply && t.lastReply !== before && JSON.stringify(t.lastReply) !== JSON.stringify(before) ? t.lastReply : null;
  }, 10000, 100);
}

/**
 * A test whose `fn(cleanup, t)` registers what it starts; everything is
 * stopped afterwards, and a failure carries the daemons' logs. `t` is
 * node:test's context, for subtests.
 */
export function e2eTest(name, fn) {
  test(name, async (t) => {
    const cleanup = newCleanup();
    try {
      await fn(cleanup, t);
    } catch (e) {
      e.message += "\n" + cleanup.logs.map((log) => log()).join("\n");
      throw e;
    } finally {
      await runCleanup(cleanup);
    }
  });
}

/** A list of stop steps, plus `logs` to print when something fails. */
export function newCleanup() {
  return Object.assign([], { logs: [] });
}

/** Runs the cleanup steps in reverse order; never throws. */
export async function runCleanup(cleanup) {
  for (const step of cleanup.reverse()) {
    try {
      await step();
    } catch (e) {
      console.error("cleanup:", e.message);
    }
  }
  cleanup.length = 0;
}
