#!/usr/bin/env node
// Side by side: peercam against other WebRTC devices that speak its MQTT
// protocol (plain mode): a GStreamer webrtcbin device and an aiortc one
// (bench/comparators/). One Mosquitto, one viewer (headless Chromium
// running the bundled web viewer), every device in turn on a fresh device
// id, each sending a 1280x720 30 fps test pattern at 2000 kb/s. Per device:
//
// - time to first frame (the viewer's own ttffMs: offer published → first
//   decoded frame) of the 1st viewer, and of the 10th with 9 watching;
// - the device process's CPU% (one core = 100 %) and RSS with 1, 5, 10 and
//   20 viewers watching, and the CPU each added viewer costs (the slope).
//
// The viewers that only make up the load (all 20 of the load part, the 9
// watching while the 10th comes) are the cheaper "load viewer"
// (bench/load-viewer.html): the bundled viewer's own Call, many to one
// Chromium page, video received and decoded but never drawn. See
// bench/README.md. A benchmark: it prints, never asserts.
//
//   node bench/compare.mjs [--trials 5] [--seconds 10] [--only peercam,webrtcbin,aiortc]
//
// It builds what it runs: peercam (`cargo build --release`) and the
// webrtcbin device (bench/webrtcbin, after installing the Debian packages
// it needs), unless PEERCAM_BIN / WEBRTCBIN_BIN name binaries to use; the
// aiortc device runs from bench/.venv, which this script makes on first run
// (python3 -m venv --system-site-packages, pip install -r
// bench/comparators/requirements.txt).
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { cpus } from "node:os";
import { extname, join, normalize } from "node:path";
import { freePort, freshNames, launchBrowser, mqttRecorder, newCleanup, openViewer, runCleanup, startDaemon, startMosquitto, viewerState, waitFor, waitForFrames } from "../tests/e2e/lib.mjs";
import { load, option, sample } from "./proc.mjs";

const here = (path) => new URL(path, import.meta.url).pathname;
const TRIALS = option("trials", 5);
const SECONDS = option("seconds", 10);
const ONLY = stringOption("only", "peercam,webrtcbin,aiortc").split(",").map((s) => s.trim()).filter(Boolean);
const LEVELS = [1, 5, 10, 20];
const TENTH = 10;
const VIDEO = { width: 1280, height: 720, fps: 30, bitrateKbps: 2000, maxViewers: 20 };
const SETTLE_MS = 3000;
const LOAD_VIEWER = stringOption("load-viewer", "decode");
if (!["decode", "keyframes"].includes(LOAD_VIEWER)) throw new Error(`--load-viewer is decode or keyframes, not ${LOAD_VIEWER}`);

const PEERCAM_BIN = process.env.PEERCAM_BIN ?? here("../target/release/peercam");
const WEBRTCBIN_BIN = process.env.WEBRTCBIN_BIN ?? here("./webrtcbin/target/release/peercam-webrtcbin");
/** Debian packages the webrtcbin device needs to build and run. */
const WEBRTCBIN_PACKAGES = ["gstreamer1.0-nice", "libgstreamer-plugins-bad1.0-dev"];
const VENV = here("./.venv");
const REQUIREMENTS = here("./comparators/requirements.txt");
const AIORTC_DEVICE = here("./comparators/aiortc_device.py");
const WEB_ROOT = here("../web");
const LOAD_PAGE = here("./load-viewer.html");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function stringOption(name, fallback) {
  const args = process.argv.slice(2);
  const at = args.indexOf(`--${name}`);
  return at >= 0 && args[at + 1] !== undefined ? args[at + 1] : fallback;
}

// ---- the viewer's files, served the same way for every device ----

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png", ".webmanifest": "application/manifest+json", ".json": "application/json" };

/** Serves web/ (and the load viewer at /load-viewer.html) on a free loopback port. */
async function serveViewer(cleanup) {
  const port = await freePort();
  const server = createServer((req, res) => {
    let path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (path === "/") path = "/index.html";
    const file = path === "/load-viewer.html" ? LOAD_PAGE : normalize(join(WEB_ROOT, path));
    if (!file.startsWith(WEB_ROOT) && file !== LOAD_PAGE) return res.writeHead(403).end();
    try {
      const body = readFileSync(file);
      res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", "Cache-Control": "no-cache" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  cleanup.push(() => new Promise((r) => server.close(r)));
  server.closeIdleConnections?.();
  return { httpPort: port, url: `http://127.0.0.1:${port}/` };
}

// ---- building what runs ----

/** Runs `cmd` with the terminal attached; throws when it fails. */
function runVisibly(cmd, args, options = {}) {
  execFileSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"], timeout: 1800000, ...options });
}

/** Builds peercam and the webrtcbin device unless their binaries were given. */
function buildDevices() {
  if (!process.env.PEERCAM_BIN && ONLY.includes("peercam")) {
    console.log("building peercam (cargo build --release) ...");
    runVisibly("cargo", ["build", "--release"], { cwd: here("..") });
  }
  if (!process.env.WEBRTCBIN_BIN && ONLY.includes("webrtcbin")) {
    const missing = WEBRTCBIN_PACKAGES.filter((p) => {
      try {
        return !execFileSync("dpkg-query", ["-W", "-f", "${Status}", p], { encoding: "utf8" }).includes("install ok installed");
      } catch {
        return true;
      }
    });
    if (missing.length) {
      console.log(`installing ${missing.join(" ")} ...`);
      const sudo = process.getuid() === 0 ? [] : ["sudo"];
      const apt = [...sudo, "apt-get", "install", "-y", "--no-install-recommends", ...missing];
      runVisibly(apt[0], apt.slice(1), { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    }
    console.log("building the webrtcbin device (bench/webrtcbin) ...");
    runVisibly("cargo", ["build", "--release", "--manifest-path", here("./webrtcbin/Cargo.toml")]);
  }
}

// ---- the aiortc venv ----

/** bench/.venv with the pinned requirements; made or brought up to date only when they changed. */
function aiortcPython() {
  const python = join(VENV, "bin", "python");
  const stampFile = join(VENV, ".requirements");
  const wanted = readFileSync(REQUIREMENTS, "utf8");
  if (existsSync(python) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === wanted) return python;
  const system = process.env.PYTHON ?? (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
  console.log(`setting up ${VENV} (aiortc and its dependencies, pinned) ...`);
  const run = (cmd, args) => execFileSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"], timeout: 600000 });
  if (!existsSync(python)) run(system, ["-m", "venv", "--system-site-packages", VENV]);
  run(python, ["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", REQUIREMENTS]);
  writeFileSync(stampFile, wanted);
  return python;
}

// ---- the devices ----

/** The command line every comparator takes. */
function sharedArgs(broker, names) {
  return [
    "--broker", broker.tcpUrl, "--prefix", names.prefix, "--device", names.device,
    "--width", String(VIDEO.width), "--height", String(VIDEO.height), "--fps", String(VIDEO.fps),
    "--bitrate-kbps", String(VIDEO.bitrateKbps), "--max-viewers", String(VIDEO.maxViewers),
  ];
}

/** A comparator process with the shared command line; `describe` is what it printed as `source: ...`. */
function startProcess(cleanup, name, cmd, args) {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  const device = {
    proc,
    pid: proc.pid,
    log: "",
    get describe() {
      return this.log.split("\n").find((l) => l.startsWith("source:"))?.slice("source:".length).trim() ?? null;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  proc.stdout.on("data", (d) => { device.log += d; });
  proc.stderr.on("data", (d) => { device.log += d; });
  proc.on("error", (e) => { device.log += `spawn failed: ${e.message}\n`; });
  cleanup.push(() => device.stop());
  cleanup.logs.push(() => `${name}:\n${device.log}`);
  return device;
}

const DEVICES = {
  peercam: {
    available: () => (existsSync(PEERCAM_BIN) ? null : `no binary at ${PEERCAM_BIN} (set PEERCAM_BIN)`),
    async start(cleanup, broker, names) {
      const daemon = await startDaemon(cleanup, {
        bin: PEERCAM_BIN, brokerUrl: broker.tcpUrl, ...names, maxViewers: VIDEO.maxViewers,
        width: VIDEO.width, height: VIDEO.height, fps: VIDEO.fps, bitrateKbps: VIDEO.bitrateKbps,
      });
      return {
        pid: daemon.proc.pid,
        get log() { return daemon.log; },
        describe: `${PEERCAM_BIN}: test source (videotestsrc smpte → x264enc ultrafast/zerolatency ${VIDEO.bitrateKbps} kb/s, keyint 60), one encoder shared by all viewers`,
        stop: () => daemon.stop(),
      };
    },
  },
  webrtcbin: {
    available: () => (existsSync(WEBRTCBIN_BIN) ? null : "not built"),
    async start(cleanup, broker, names) {
      const device = startProcess(cleanup, "webrtcbin", WEBRTCBIN_BIN, sharedArgs(broker, names));
      return withDescription(device, `${WEBRTCBIN_BIN}`);
    },
  },
  aiortc: {
    available: () => null,
    async start(cleanup, broker, names) {
      const python = aiortcPython();
      const device = startProcess(cleanup, "aiortc", python, [AIORTC_DEVICE, ...sharedArgs(broker, names)]);
      return withDescription(device, "bench/comparators/aiortc_device.py");
    },
  },
};

function withDescription(device, what) {
  return {
    pid: device.pid,
    get log() { return device.log; },
    get describe() { return `${what}: ${device.describe ?? "(printed no source: line)"}`; },
    stop: () => device.stop(),
    proc: device.proc,
  };
}

// ---- measuring ----

/** Pids of `root` and everything below it. */
function processTree(root) {
  const children = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1].split(" ")[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  const out = [];
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop();
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** CPU seconds of a process tree now. */
function treeCpuSeconds(root) {
  let total = 0;
  for (const pid of processTree(root)) {
    try {
      total += sample(pid).cpuSeconds;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** Busy and total jiffies of the whole machine. */
function machineJiffies() {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = fields[3] + (fields[4] ?? 0);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** The device's CPU% and RSS over SECONDS, with the load viewer's Chromium CPU% and the machine's busy %. */
async function measureWindow(pid, browserPid) {
  const machine0 = machineJiffies();
  const browser0 = treeCpuSeconds(browserPid);
  const t0 = performance.now();
  const device = await load(pid, SECONDS);
  const seconds = (performance.now() - t0) / 1000;
  const machine1 = machineJiffies();
  return {
    ...device,
    browserPercent: (100 * (treeCpuSeconds(browserPid) - browser0)) / seconds,
    machineBusyPercent: (100 * (machine1.busy - machine0.busy)) / Math.max(1, machine1.total - machine0.total),
  };
}

const median = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] : null);
/** Nearest-rank p95: with 5 trials, the largest. */
const p95 = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.ceil(0.95 * xs.length) - 1] : null);

/** Least-squares slope of y over x. */
function slope(points) {
  const ps = points.filter((p) => p.y !== null && p.y !== undefined);
  if (ps.length < 2) return null;
  const mx = ps.reduce((a, p) => a + p.x, 0) / ps.length;
  const my = ps.reduce((a, p) => a + p.y, 0) / ps.length;
  const num = ps.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0);
  const den = ps.reduce((a, p) => a + (p.x - mx) ** 2, 0);
  return den ? num / den : null;
}

/** Offer → first decoded frame (the viewer's ttffMs) of a viewer page. */
async function firstFrame(page) {
  await waitForFrames(page, 1, 30000);
  const stats = await waitFor("time to first frame", async () => {
    const s = (await viewerState(page)).stats;
    return s.ttffMs !== null ? s : null;
  }, 5000);
  return stats.ttffMs;
}

/**
 * Ends `page`'s call with the viewer's Hang up (it sends `bye`), waits for
 * the device to count `viewersLeft` (`waitViewers`), then closes the page:
 * every device hears the end the same way, rather than some noticing a
 * closed tab only when ICE times out.
 */
async function hangUpAndClose(page, waitViewers, viewersLeft) {
  try {
    await page.click("#hangup", { timeout: 2000 }).catch(() => {});
    await waitViewers(viewersLeft);
  } finally {
    await page.close();
  }
}

/** One device: ttff of the 1st and 10th viewer, then CPU and RSS at every load level. */
async function benchDevice(name, spec, { broker, host, viewerBrowser, loadBrowser }) {
  const cleanup = newCleanup();
  const result = { name, ttff1: [], ttff10: [], levels: {}, notes: [] };
  try {
    const names = freshNames();
    const base = `${names.prefix}/${names.device}`;
    const recorder = await mqttRecorder(cleanup, broker.tcpUrl, [`${base}/status`]);
    const device = await spec.start(cleanup, broker, names);
    const viewers = (n, timeoutMs = 20000) => recorder.waitLatest(`${base}/status`, (s) => s.online && s.viewers === n, `${name}: viewers = ${n}`, timeoutMs);
    const exited = () => device.proc && (device.proc.exitCode !== null || device.proc.signalCode !== null);
    await waitFor(`${name} to come online`, () => exited() || recorder.json(`${base}/status`).some((s) => s?.online && s.viewers === 0), 60000, 100);
    if (exited()) throw new Error(`${name} exited (${device.proc.exitCode ?? device.proc.signalCode}) before it came online:\n${device.log}`);
    result.describe = device.describe;
    await sleep(2000);
    const link = { brokerUrl: broker.wsUrl, ...names };

    console.log(`${name}: time to first frame, 1st viewer ...`);
    for (let i = 0; i < TRIALS; i++) {
      const page = await openViewer(viewerBrowser, host, link);
      try {
        result.ttff1.push(await firstFrame(page));
      } finally {
        await hangUpAndClose(page, viewers, 0);
      }
    }

    const loadPage = await loadBrowser.newPage();
    cleanup.push(() => loadPage.close().catch(() => {}));
    loadPage.on("pageerror", (e) => console.error(`${name} load page error:`, e.message));
    await loadPage.goto(`${host.url}load-viewer.html?mode=${LOAD_VIEWER}`);
    await loadPage.waitForFunction(() => window.peercamLoad !== undefined, null, { timeout: 10000 });
    cleanup.push(() => loadPage.evaluate(() => window.peercamLoad.end()).catch(() => {}));
    await loadPage.evaluate((l) => window.peercamLoad.connect(l), link);
    const snapshot = () => loadPage.evaluate(() => window.peercamLoad.snapshot());

    /** Adds load viewers up to `n`, waits until each decodes frames and the status counts them. */
    const rampTo = async (n) => {
      const have = (await snapshot()).length;
      for (let i = have; i < n; i++) {
        await loadPage.evaluate(() => window.peercamLoad.add());
        await sleep(100);
      }
      try {
        await waitFor(`${n} load viewers decoding`, async () => {
          const calls = await snapshot();
          const dead = calls.filter((c) => c.state === "ended");
          if (dead.length) throw new Error(`${dead.length} load viewer(s) ended: ${JSON.stringify(dead[0].ended)}`);
          return calls.every((c) => c.framesDecoded > 0);
        }, 60000, 250);
        await viewers(n);
      } catch (e) {
        result.notes.push(`at ${n} viewers: ${e.message.split("\n")[0]}`);
      }
    };

    for (const level of LEVELS) {
      if (level === TENTH) {
        await rampTo(TENTH - 1);
        console.log(`${name}: time to first frame, ${TENTH}th viewer ...`);
        for (let i = 0; i < TRIALS; i++) {
          const page = await openViewer(viewerBrowser, host, link);
          try {
            result.ttff10.push(await firstFrame(page));
          } catch (e) {
            result.notes.push(`${TENTH}th viewer trial ${i + 1}: ${e.message.split("\n")[0]}`);
          } finally {
            await hangUpAndClose(page, viewers, TENTH - 1).catch((e) => result.notes.push(e.message));
          }
        }
      }
      console.log(`${name}: ${level} viewer(s) ...`);
      await rampTo(level);
      await sleep(SETTLE_MS);
      const before = await snapshot();
      const window = await measureWindow(device.pid, loadBrowser.pid);
      const after = await snapshot();
      const rates = after.map((c, i) => ({
        connected: c.state === "connected",
        fps: before[i] ? (c.frames - before[i].frames) / SECONDS : 0,
        keyframes: before[i] ? (c.keyframes - before[i].keyframes) / SECONDS : 0,
        kbps: before[i] ? ((c.bytes - before[i].bytes) * 8) / 1000 / SECONDS : 0,
      }));
      result.levels[level] = {
        ...window,
        connected: rates.filter((r) => r.connected).length,
        fpsAvg: rates.reduce((a, r) => a + r.fps, 0) / Math.max(1, rates.length),
        fpsMin: Math.min(...rates.map((r) => r.fps)),
        kbpsAvg: rates.reduce((a, r) => a + r.kbps, 0) / Math.max(1, rates.length),
        keyframesAvg: rates.reduce((a, r) => a + r.keyframes, 0) / Math.max(1, rates.length),
      };
    }
    if (device.proc && device.proc.exitCode !== null) result.notes.push(`${name} exited with ${device.proc.exitCode} during the run`);
  } catch (e) {
    result.error = e.message.split("\n")[0];
    console.error(`${name} failed: ${e.message}\n${cleanup.logs.map((l) => l()).join("\n").slice(-4000)}`);
  } finally {
    await runCleanup(cleanup);
  }
  return result;
}

// ---- printing ----

const num = (x, digits = 0) => (x === null || x === undefined || Number.isNaN(x) ? "—" : x.toFixed(digits));

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** The numbers of one device, in the order of the table's columns. */
function columns(r) {
  const level = (n, key) => r.levels[n]?.[key] ?? null;
  const cpuSlope = slope(LEVELS.filter((n) => keptUp(r, n)).map((n) => ({ x: n, y: level(n, "cpuPercent") })));
  return [
    median(r.ttff1), p95(r.ttff1), median(r.ttff10), p95(r.ttff10),
    ...LEVELS.map((n) => level(n, "cpuPercent")), cpuSlope,
    level(1, "rssMiB"), level(20, "rssMiB"),
  ];
}

/** Whether every load viewer got at least 90 % of the frames at level `n`. */
function keptUp(r, n) {
  const l = r.levels[n];
  return !!l && l.connected === n && l.fpsMin >= 0.9 * VIDEO.fps;
}

/** `columns(r)` as text, a CPU figure marked `*` where the viewers did not get their frames (and the slope where it left levels out). */
function cells(r) {
  return columns(r).map((x, i) => {
    const text = num(x, DIGITS[i]);
    if (x === null) return text;
    const n = LEVELS[i - 4];
    if (n !== undefined && r.levels[n] && !keptUp(r, n)) return `${text}*`;
    if (i === 8 && LEVELS.some((m) => r.levels[m] && !keptUp(r, m))) return `${text}*`;
    return text;
  });
}

const HEADER = ["device", "ttff1 med", "ttff1 p95", "ttff10 med", "ttff10 p95", "CPU@1", "CPU@5", "CPU@10", "CPU@20", "CPU/viewer", "RSS@1", "RSS@20"];
const DIGITS = [0, 0, 0, 0, 1, 1, 1, 1, 2, 1, 1];

function report(results, skipped, otherLoad) {
  console.log("\n== peercam side by side ==");
  console.log(`machine: ${cpus().length} cores, ${otherLoad.toFixed(0)} % busy (100 % per core) in the 2 s before the run`);
  console.log(`${VIDEO.width}x${VIDEO.height} @ ${VIDEO.fps} fps, ${VIDEO.bitrateKbps} kb/s, max_viewers ${VIDEO.maxViewers}; ${TRIALS} trials per ttff; ${SECONDS} s per load window; all on loopback, one Mosquitto, headless Chromium (${process.env.CHROMIUM ?? "/usr/bin/chromium"})`);
  for (const r of results) console.log(`${r.name}: ${r.describe ?? "(did not start)"}`);
  for (const [name, why] of skipped) console.log(`${name}: ${why}`);
  console.log("ttff: the bundled viewer's ttffMs (offer published → first decoded frame), ms. ttff10: with 9 load viewers watching.");
  console.log("CPU: the device process, % of one core; CPU/viewer: least-squares slope over 1/5/10/20 viewers (the levels that kept up); RSS MiB.");
  console.log(`Load viewers: the bundled viewer's Call, N per Chromium page, nothing drawn; ${LOAD_VIEWER === "decode" ? "every frame decoded" : "only keyframes decoded"} (--load-viewer ${LOAD_VIEWER}; bench/load-viewer.html).\n`);
  const rows = results.map((r) => [r.name, ...cells(r)]);
  console.log(table(HEADER, rows));
  if (results.some((r) => LEVELS.some((n) => r.levels[n] && !keptUp(r, n)))) {
    console.log(`* some viewers got under 90 % of the ${VIDEO.fps} fps (or did not connect) at that level: the device or the machine could not keep up,`);
    console.log("  so that CPU figure is a ceiling reached, not the cost of the load; CPU/viewer* is the slope over the levels that kept up.");
  }

  const peercam = results.find((r) => r.name === "peercam");
  if (peercam) {
    const base = columns(peercam);
    console.log("\nratios against peercam (device ÷ peercam; > 1: the device takes longer or more)\n");
    console.log(table(HEADER, results.map((r) => [r.name, ...columns(r).map((x, i) => (x === null || !base[i] ? "—" : `${(x / base[i]).toFixed(2)}x`))])));
  }

  console.log("\nwhat the load viewers got, and how busy the machine was (machine: 100 % per core)\n");
  const deliveryRows = [];
  for (const r of results) {
    for (const n of LEVELS) {
      const l = r.levels[n];
      if (!l) continue;
      deliveryRows.push([r.name, n, `${l.connected}/${n}`, num(l.fpsAvg, 1), num(l.fpsMin, 1), num(l.kbpsAvg, 0), num(l.keyframesAvg, 2), num(l.browserPercent, 0), num(l.machineBusyPercent * cpus().length, 0)]);
    }
  }
  console.log(table(["device", "viewers", "connected", "fps avg", "fps min", "kb/s avg", "keyframes/s", "load viewer CPU%", "machine CPU%"], deliveryRows));
  for (const r of results) {
    if (r.error) console.log(`${r.name}: FAILED: ${r.error}`);
    for (const note of r.notes) console.log(`${r.name}: note: ${note}`);
  }
}

// ---- main ----

buildDevices();
const cleanup = newCleanup();
const results = [];
const skipped = [];
/** Ctrl-C, SIGTERM or a run far past its time: stop everything started, then exit. */
const bail = async (why) => {
  console.error(`compare: ${why}; stopping everything`);
  await runCleanup(cleanup);
  process.exit(1);
};
process.once("SIGINT", () => bail("interrupted"));
process.once("SIGTERM", () => bail("terminated"));
const WATCHDOG_S = 600 + ONLY.length * (TRIALS * 2 * 40 + LEVELS.length * (SECONDS + 90));
setTimeout(() => bail(`still running after ${WATCHDOG_S} s`), WATCHDOG_S * 1000).unref();
try {
  const started = performance.now();
  const quiet0 = machineJiffies();
  await sleep(2000);
  const quiet1 = machineJiffies();
  const otherLoad = (100 * cpus().length * (quiet1.busy - quiet0.busy)) / Math.max(1, quiet1.total - quiet0.total);
  console.log(`machine: ${cpus().length} cores, ${otherLoad.toFixed(0)} % busy before the run (other work on the machine skews every number below)`);
  const broker = await startMosquitto(cleanup);
  const host = await serveViewer(cleanup);
  const viewerBrowser = await launchBrowser(cleanup);
  const loadBrowser = await launchBrowser(cleanup);
  for (const name of ["peercam", "webrtcbin", "aiortc"].filter((n) => ONLY.includes(n))) {
    const why = DEVICES[name].available();
    if (why) {
      console.log(`${name}: ${why}`);
      skipped.push([name, why]);
      continue;
    }
    results.push(await benchDevice(name, DEVICES[name], { broker, host, viewerBrowser, loadBrowser }));
  }
  report(results, skipped, otherLoad);
  console.log(`\n(run took ${Math.round((performance.now() - started) / 1000)} s)`);
} finally {
  await runCleanup(cleanup);
}
process.exit(0);
