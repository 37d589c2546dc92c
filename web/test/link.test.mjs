// Pairing links: what the fragment carries in, that the password and the key never go back
// out, which pairing a sealed-mode link makes, and the broker a bare page suggests.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { defaultBrokerUrl, linkFragment, mixedContentProblem, pairingFromLink, parseLink, withoutSecrets } from "../js/link.js";
import { PairingError } from "../js/seal.js";

const vectors = JSON.parse(await readFile(new URL("../../docs/protocol-vectors.json", import.meta.url), "utf8"));

test("a full plain-mode link is read field by field", () => {
  const link = parseLink("#v=1&b=wss%3A%2F%2Fbroker.example%3A8884&p=home%2Fcams&d=front-door&u=alice&w=p%40ss%20word&auto=0");
  assert.deepEqual(link, {
    broker: "wss://broker.example:8884",
    prefix: "home/cams",
    device: "front-door",
    username: "alice",
    password: "p@ss word",
    key: null,
    name: null,
    auto: false,
    relay: false,
  });
});

test("a minimal link gets the default prefix and calls automatically", () => {
  const link = parseLink("b=ws%3A%2F%2F127.0.0.1%3A8083");
  assert.equal(link.prefix, "peercam");
  assert.equal(link.device, null);
  assert.equal(link.password, null);
  assert.equal(link.auto, true);
});

test("a sealed-mode link keeps its key and name for the page to check", () => {
  const link = parseLink("#v=1&b=ws%3A%2F%2Fh%3A1&d=cam&k=0011223344556677.c2VjcmV0&n=kitchen");
  assert.equal(link.key, "0011223344556677.c2VjcmV0");
  assert.equal(link.name, "kitchen");
});

test("a link for another protocol version is a problem, not a link", () => {
  const link = parseLink("#v=2&b=ws%3A%2F%2Fh%3A1&d=cam");
  assert.deepEqual(Object.keys(link), ["problem"]);
  assert.match(link.problem, /protocol version 2/);
  assert.match(link.problem, /speaks version 1/);
});

test("without a broker there is no link", () => {
  assert.equal(parseLink(""), null);
  assert.equal(parseLink("#v=1&d=cam&w=secret"), null);
});

test("the bookmark fragment carries broker, prefix, device and user, never the password", () => {
  const form = { broker: " ws://h:8083 ", prefix: "peercam ", username: "bob", password: "hunter2" };
  const fragment = linkFragment(form, "garage");
  assert.equal(fragment, "#v=1&b=ws%3A%2F%2Fh%3A8083&p=peercam&d=garage&u=bob");
  assert.ok(!fragment.includes("hunter2"));
  assert.ok(!new URLSearchParams(fragment.slice(1)).has("w"));
});

test("the bookmark fragment leaves out what is not set", () => {
  assert.equal(linkFragment({ broker: "ws://h:1", prefix: "p", username: "", password: "" }, null), "#v=1&b=ws%3A%2F%2Fh%3A1&p=p");
});

test("relay=1 asks for relayed candidates only; anything else does not", () => {
  assert.equal(parseLink("#v=1&b=ws%3A%2F%2Fh%3A1&d=cam&relay=1").relay, true);
  assert.equal(parseLink("#v=1&b=ws%3A%2F%2Fh%3A1&d=cam&relay=0").relay, false);
  assert.equal(parseLink("#v=1&b=ws%3A%2F%2Fh%3A1&d=cam&relay=yes").relay, false);
  assert.equal(parseLink("#v=1&b=ws%3A%2F%2Fh%3A1&d=cam").relay, false);
});

test("the bookmark fragment keeps the relay option", () => {
  const form = { broker: "ws://h:1", prefix: "p", username: "", password: "" };
  assert.equal(linkFragment(form, "cam", { relay: true }), "#v=1&b=ws%3A%2F%2Fh%3A1&p=p&d=cam&relay=1");
  assert.equal(linkFragment(form, "cam", { relay: false }), "#v=1&b=ws%3A%2F%2Fh%3A1&p=p&d=cam");
});

test("a link round-trips through its own fragment, minus the password", () => {
  const opened = parseLink("#v=1&b=ws%3A%2F%2Fh%3A1&p=x%2Fy&d=cam&u=alice&w=secret&relay=1");
  const form = { broker: opened.broker, prefix: opened.prefix, username: opened.username, password: opened.password };
  const again = parseLink(linkFragment(form, opened.device, { relay: opened.relay }));
  assert.deepEqual(again, { ...opened, password: null });
});

test("the address is rewritten without the password, keeping the rest in order", () => {
  assert.equal(withoutSecrets("#v=1&b=ws%3A%2F%2Fh%3A1&w=secret&d=cam"), "#v=1&b=ws%3A%2F%2Fh%3A1&d=cam");
  assert.equal(withoutSecrets("#w=secret"), "");
});

test("the address is rewritten without the key (and the password) of a pairing link", () => {
  const { link } = vectors.pairing_link;
  const stripped = withoutSecrets(`${new URL(link).hash}&u=alice&w=pw`);
  assert.ok(!stripped.includes(vectors.key_string.split(".")[1]));
  assert.ok(!stripped.includes("pw"));
  const rest = parseLink(stripped);
  assert.equal(rest.key, null);
  assert.equal(rest.password, null);
  assert.equal(rest.device, "cam1");
  assert.equal(rest.name, "Alice's phone");
  assert.equal(rest.username, "alice");
});

test("an address without a password or a key needs no rewrite", () => {
  assert.equal(withoutSecrets("#v=1&b=ws%3A%2F%2Fh%3A1&d=cam"), null);
  assert.equal(withoutSecrets(""), null);
});

test("a good pairing link makes a pairing to keep, without the password", async () => {
  const link = parseLink(`${new URL(vectors.pairing_link.link).hash}&u=alice&w=pw`);
  assert.deepEqual(await pairingFromLink(link), {
    broker: "wss://broker.example:8884/mqtt", prefix: "peercam", device: "cam1", key: vectors.key_string, name: "Alice's phone", username: "alice",
  });
});

test("a damaged pairing link is refused with what to do", async () => {
  const good = parseLink(new URL(vectors.pairing_link.link).hash);
  const [kid, secret] = vectors.key_string.split(".");
  const refused = (message) => (e) => e instanceof PairingError && message.test(e.message) && e.message.includes("peercam pair");
  await assert.rejects(pairingFromLink({ ...good, key: `${kid.replace(/^./, kid[0] === "0" ? "1" : "0")}.${secret}` }), refused(/does not match its key id/));
  await assert.rejects(pairingFromLink({ ...good, key: `${kid}.${secret.slice(1)}` }), refused(/not 32 bytes/));
  await assert.rejects(pairingFromLink({ ...good, device: null }), refused(/names no valid device/));
  await assert.rejects(pairingFromLink({ ...good, device: "a/b" }), refused(/names no valid device/));
});

test("a bare page suggests a broker on its own host, wss when the page is https", () => {
  assert.equal(defaultBrokerUrl({ protocol: "http:", hostname: "cam.local" }), "ws://cam.local:8083");
  assert.equal(defaultBrokerUrl({ protocol: "https:", hostname: "cam.example" }), "wss://cam.example:8084");
  assert.equal(defaultBrokerUrl({ protocol: "file:", hostname: "" }), "ws://127.0.0.1:8083");
});

test("an https page refuses a plain ws:// broker, except on loopback, and says what to use", () => {
  assert.equal(mixedContentProblem("ws://broker.example:8083/mqtt", "https:"),
    "This page was opened over https, so the browser refuses the unencrypted broker address ws://broker.example:8083/mqtt. Use wss://broker.example:8083/mqtt (the broker's WebSocket listener with TLS).");
  assert.match(mixedContentProblem("ws://cam.local:8083", "https:"), /Use wss:\/\/cam\.local:8083 \(/);
  assert.equal(mixedContentProblem("wss://broker.example:8084", "https:"), null);
  assert.equal(mixedContentProblem("ws://127.0.0.1:8083", "https:"), null);
  assert.equal(mixedContentProblem("ws://localhost:8083", "https:"), null);
  assert.equal(mixedContentProblem("ws://broker.example:8083", "http:"), null);
  assert.equal(mixedContentProblem("not a url", "https:"), null);
});
