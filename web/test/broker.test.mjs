// The broker link against a fake mqtt.js client: device discovery and per-call routing.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import { BrokerLink } from "../js/broker.js";

/** An mqtt.js client stand-in: records calls; `suback` decides how subscriptions are answered. */
class FakeClient extends EventEmitter {
  constructor(url, options) {
    super();
    this.url = url;
    this.options = options;
    this.connected = false;
    this.subscriptions = [];
    this.published = [];
    this.ended = false;
    this.suback = (topic) => [null, [{ topic, qos: 1 }]];
  }

  subscribe(topic, options, callback) {
    this.subscriptions.push({ topic, options });
    callback(...this.suback(topic));
  }

  unsubscribe(topic) {
    this.subscriptions = this.subscriptions.filter((s) => s.topic !== topic);
  }

  publish(topic, text, options) {
    this.published.push({ topic, text, options });
  }

  end(force) {
    this.ended = force;
  }

  /** The broker accepted the connection. */
  up() {
    this.connected = true;
    this.emit("connect");
  }

  deliver(topic, text) {
    this.emit("message", topic, new TextEncoder().encode(text));
  }
}

function link(options = {}) {
  const heard = [];
  let client;
  const handlers = Object.fromEntries(["ready", "refused", "error", "offline", "reconnecting", "devices", "event"].map((name) => [name, (...args) => heard.push([name, ...args])]));
  const broker = new BrokerLink({
    url: "ws://b:8083", prefix: "home/cams", username: "alice", password: "", handlers,
    connect: (url, opts) => (client = new FakeClient(url, opts)),
    ...options,
  });
  return { broker, client, heard };
}

test("connects with the login, and subscribes to every status and event once connected", () => {
  const { broker, client, heard } = link();
  assert.equal(client.url, "ws://b:8083");
  assert.equal(client.options.username, "alice");
  assert.equal(client.options.password, undefined, "an empty password is no password");
  assert.equal(client.options.protocolVersion, 4);
  assert.equal(client.options.timerVariant, "native", "no blob: worker, which the CSP forbids");
  assert.equal(broker.connected, false);
  client.up();
  assert.deepEqual(client.subscriptions, [{ topic: "home/cams/+/status", options: { qos: 1 } }, { topic: "home/cams/+/event", options: { qos: 1 } }]);
  assert.deepEqual(heard, [["ready"]]);
  assert.equal(broker.connected, true);
});

test("a refused status subscription is reported with the filter; a refused event subscription is no error", () => {
  const { client, heard } = link();
  client.suback = (topic) => (topic.endsWith("/status") ? [new Error("not authorized")] : [null, [{ topic, qos: 128 }]]);
  client.up();
  assert.equal(heard[0][0], "refused");
  assert.equal(heard[0][1].message, "The broker refused the subscription to home/cams/+/status: not authorized");
  assert.equal(heard.length, 1);
});

test("retained statuses list devices; a cleared one removes its device", () => {
  const { broker, client, heard } = link();
  client.up();
  client.deliver("home/cams/front/status", '{"v":1,"online":true,"name":"Front"}');
  client.deliver("home/cams/back/status", '{"v":1,"online":false}');
  assert.deepEqual([...broker.devices.keys()], ["front", "back"]);
  assert.equal(broker.devices.get("front").name, "Front");
  client.emit("message", "home/cams/front/status", new Uint8Array(0));
  assert.deepEqual([...broker.devices.keys()], ["back"]);
  assert.deepEqual(heard.map(([name]) => name), ["ready", "devices", "devices", "devices"]);
});

test("messages that are no status or event of this prefix change nothing", () => {
  const { broker, client, heard } = link();
  client.deliver("other/front/status", '{"v":1,"online":true}');
  client.deliver("home/cams/front/status", '{"v":2,"online":true}');
  client.deliver("other/front/event", '{"v":1,"type":"ring"}');
  client.deliver("home/cams/front/event", '{"v":2,"type":"ring"}');
  client.deliver("home/cams/front/event", '{"v":1}');
  assert.equal(broker.devices.size, 0);
  assert.deepEqual(heard, []);
});

test("a device event is handed on with its device; the device list stays as it was", () => {
  const { broker, client, heard } = link();
  client.deliver("home/cams/front/event", '{"v":1,"type":"ring","at":"2026-11-23T19:00:00Z"}');
  assert.deepEqual(heard, [["event", "front", { v: 1, type: "ring", at: "2026-11-23T19:00:00Z" }]]);
  assert.equal(broker.devices.size, 0);
});

test("each reconnect attempt is told", () => {
  const { client, heard } = link();
  client.emit("offline");
  client.emit("reconnect");
  assert.deepEqual(heard, [["offline"], ["reconnecting"]]);
});

test("a call's topic goes to the call, not the device list", async () => {
  const { broker, client } = link();
  const received = [];
  await broker.subscribe("home/cams/front/out/S", (payload) => received.push(new TextDecoder().decode(payload)));
  client.deliver("home/cams/front/out/S", '{"v":1,"type":"answer"}');
  assert.deepEqual(received, ['{"v":1,"type":"answer"}']);
  broker.unsubscribe("home/cams/front/out/S");
  client.deliver("home/cams/front/out/S", '{"v":1,"type":"bye"}');
  assert.equal(received.length, 1);
  assert.deepEqual(client.subscriptions, []);
});

test("a subscription the broker refuses in its SUBACK rejects", async () => {
  const { broker, client } = link();
  client.suback = (topic) => [null, [{ topic, qos: 128 }]];
  await assert.rejects(broker.subscribe("home/cams/front/out/S", () => {}), /the broker refused home\/cams\/front\/out\/S/);
});

test("publishes at QoS 1, not retained", () => {
  const { broker, client } = link();
  broker.publish("home/cams/front/in/S", "{}");
  assert.deepEqual(client.published, [{ topic: "home/cams/front/in/S", text: "{}", options: { qos: 1 } }]);
});

test("an ended link closes at once and has no more say", () => {
  const { broker, client, heard } = link();
  broker.end();
  assert.equal(client.ended, true);
  client.up();
  client.emit("offline");
  client.emit("error", new Error("late"));
  assert.deepEqual(heard, []);
  assert.equal(broker.connected, false);
});

test("refreshing a status subscribes anew and resolves with the device's status once it comes again", async () => {
  const { broker, client } = link();
  client.up();
  client.deliver("home/cams/cam/status", '{"v":1,"online":true,"nonce":"old"}');
  const refreshed = broker.refreshStatus("cam");
  assert.equal(client.subscriptions.length, 3, "the status filter again, for the broker to resend what it retains");
  assert.equal(client.subscriptions[2].topic, "home/cams/+/status");
  client.deliver("home/cams/other/status", '{"v":1,"online":true}');
  client.deliver("home/cams/cam/status", '{"v":1,"online":true,"nonce":"new"}');
  assert.equal((await refreshed).nonce, "new");
  assert.equal(broker.statusWaiters.size, 0);
});

test("a status that does not come again leaves what is known after the wait", async () => {
  const { broker, client } = link();
  client.up();
  client.deliver("home/cams/cam/status", '{"v":1,"online":true,"nonce":"old"}');
  assert.equal((await broker.refreshStatus("cam", 10)).nonce, "old");
  assert.equal(await broker.refreshStatus("gone", 10), null);
});
