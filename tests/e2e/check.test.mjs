// `peercam check` names each problem the configuration would hit, with its
// fix, and exits non-zero; a good configuration passes.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { alsaBench, e2eTest, PEERCAM_BIN, scratchDir, startMosquitto } from "./lib.mjs";

function check(dir, name, config) {
  const path = join(dir, name);
  writeFileSync(path, config);
  const run = spawnSync(PEERCAM_BIN, ["check", "-c", path], { encoding: "utf8", timeout: 30000 });
  return { status: run.status, out: run.stdout + run.stderr };
}

/** The checklist line for `topic` and the fix line under it. */
function entry(out, topic) {
  const lines = out.split("\n");
  const at = lines.findIndex((l) => l.includes(`] ${topic}`) && l.startsWith("[FAIL]"));
  assert.ok(at >= 0, `a failed ${topic} line in:\n${out}`);
  return { line: lines[at], fix: lines[at + 1]?.trim() ?? "" };
}

e2eTest("check reports a missing element, an unreachable broker and a wrong password, with fixes", async (cleanup) => {
  const dir = scratchDir(cleanup);
  const passwd = join(dir, "passwd");
  writeFileSync(passwd, "");
  execFileSync("mosquitto_passwd", ["-b", passwd, "device", "right"]);
  const broker = await startMosquitto(cleanup, { extraConfig: `allow_anonymous false\npassword_file ${passwd}` });
  const video = '[video]\nsource = "test"\nwidth = 320\nheight = 240\n';

  const missing = check(dir, "missing.toml", `[device]\nid = "c1"\n[mqtt]\nbroker = "${broker.tcpUrl}"\nusername = "device"\npassword = "right"\n[video]\nsource = "pipeline"\npipeline = "videotestsrc ! nosuchenc ! appsink name=sink"\n`);
  assert.equal(missing.status, 1, missing.out);
  const element = entry(missing.out, "gstreamer");
  assert.match(element.line, /`nosuchenc` is missing/);
  assert.match(element.fix, /^fix: .*gst-inspect-1\.0 nosuchenc/);
  assert.match(missing.out, /\[ ok \] broker .*login accepted/);

  const unreachable = check(dir, "unreachable.toml", `[device]\nid = "c2"\n[mqtt]\nbroker = "mqtt://127.0.0.1:1"\n${video}`);
  assert.equal(unreachable.status, 1, unreachable.out);
  const down = entry(unreachable.out, "broker");
  assert.match(down.line, /unreachable/);
  assert.match(down.fix, /^fix: check the host, port and scheme of mqtt\.broker/);
  assert.match(unreachable.out, /\[ ok \] gstreamer/);

  const refused = check(dir, "refused.toml", `[device]\nid = "c3"\n[mqtt]\nbroker = "${broker.wsUrl}"\nusername = "device"\npassword = "wrong"\n${video}`);
  assert.equal(refused.status, 1, refused.out);
  const login = entry(refused.out, "broker");
  assert.match(login.line, /refused the connection/);
  assert.match(login.fix, /^fix: set mqtt\.username and mqtt\.password_file/);

  const good = check(dir, "good.toml", `[device]\nid = "c4"\n[mqtt]\nbroker = "${broker.wsUrl}"\nusername = "device"\npassword = "right"\n${video}`);
  assert.equal(good.status, 0, good.out);
  assert.match(good.out, /everything the configuration needs is here/);
});

e2eTest("check opens the configured microphone and speaker, naming the one that fails", async (cleanup) => {
  const dir = scratchDir(cleanup);
  const bench = alsaBench(cleanup, { input: "silence" });
  const run = (name, audio) => {
    const path = join(dir, name);
    writeFileSync(path, `[device]\nid = "a1"\n[mqtt]\nbroker = "mqtt://127.0.0.1:1"\n[audio]\nenabled = true\n${audio}\n`);
    const result = spawnSync(PEERCAM_BIN, ["check", "-c", path], { encoding: "utf8", timeout: 30000, env: { ...process.env, ...bench.env } });
    return result.stdout + result.stderr;
  };
  const good = run("good.toml", 'capture_device = "mic"\nplayback_device = "spk"');
  assert.match(good, /\[ ok \] audio +capture device `mic` opens at 48 kHz mono/);
  assert.match(good, /\[ ok \] audio +playback device `spk` opens at 48 kHz mono/);
  const bad = run("bad.toml", 'capture_device = "nosuchmic"\nplayback_device = "spk"');
  const mic = entry(bad, "audio");
  assert.match(mic.line, /capture device: cannot open ALSA capture device `nosuchmic`/);
  assert.match(mic.fix, /^fix: list the devices with `arecord -L` and set `audio\.capture_device`/);
});
