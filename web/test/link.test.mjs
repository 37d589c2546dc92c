// Pairing links: what the fragment carries in, and that the password never goes back out.
import assert from "node:assert/strict";
import { test } from "node:test";
import { linkFragment, parseLink, withoutPassword } from "../js/link.js";

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

test("a sealed-mode link keeps its key and name for the page to refuse", () => {
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
  assert.equal(withoutPassword("#v=1&b=ws%3A%2F%2Fh%3A1&w=secret&d=cam"), "#v=1&b=ws%3A%2F%2Fh%3A1&d=cam");
  assert.equal(withoutPassword("#w=secret"), "");
});

test("an address without a password needs no rewrite", () => {
  assert.equal(withoutPassword("#v=1&b=ws%3A%2F%2Fh%3A1&d=cam"), null);
  assert.equal(withoutPassword(""), null);
});
