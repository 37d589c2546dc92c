// The link to the MQTT broker: connects with mqtt.js (the vendored classic
// script's `window.mqtt`), keeps the list of devices from their retained
// `P/D/status`, and hands each call the messages of its own topic.

import { eventFilter, eventUpdate, statusFilter, statusUpdate } from "./protocol.js";

const MQTT_PROTOCOL_VERSION = 4;
const RECONNECT_PERIOD_MS = 2000;
const BROKER_CONNECT_TIMEOUT_MS = 8000;
/** The SUBACK return code of a refused subscription. */
const SUBSCRIPTION_REFUSED = 128;
const QOS = 1;
/** How long `refreshStatus` waits for the device's status to come again. */
const STATUS_REFRESH_WAIT_MS = 1500;

/**
 * One broker connection for one prefix. `handlers` are told of it:
 * `ready()` once the status subscription is in place (after every
 * reconnect), `refused(error)` when the broker refuses it, `error(error)`,
 * `offline()`, `reconnecting()` at each new attempt to connect,
 * `devices()` after every status message, and `event(deviceId, event)`
 * for each device event on `P/D/event` (rings reach a page that is in no
 * call that way).
 */
export class BrokerLink {
  /** `connect` is mqtt.js's `connect` unless a test passes its own. */
  constructor({ url, prefix, username, password, handlers, connect = (...args) => globalThis.mqtt.connect(...args) }) {
    this.url = url;
    this.prefix = prefix;
    this.handlers = handlers;
    this.devices = new Map();
    this.routes = new Map();
    this.statusWaiters = new Set();
    this.ended = false;
    this.client = connect(url, {
      protocolVersion: MQTT_PROTOCOL_VERSION,
      clean: true,
      reconnectPeriod: RECONNECT_PERIOD_MS,
      connectTimeout: BROKER_CONNECT_TIMEOUT_MS,
      // mqtt.js would time its keepalive in a blob: worker, which the
      // page's Content-Security-Policy forbids (and then never pings).
      timerVariant: "native",
      username: username || undefined,
      password: password || undefined,
    });
    this.client.on("connect", () => this.subscribeStatus());
    this.client.on("error", (err) => this.notify("error", err));
    this.client.on("offline", () => this.notify("offline"));
    this.client.on("reconnect", () => this.notify("reconnecting"));
    this.client.on("message", (topic, payload) => this.onMessage(topic, payload));
  }

  /** Whether the broker connection is up now. */
  get connected() {
    return !this.ended && this.client.connected;
  }

  /** Calls a handler unless this link was ended: a replaced link has no say. */
  notify(name, ...args) {
    if (!this.ended) this.handlers[name](...args);
  }

  /**
   * (Re)subscribes to every device's status (the broker resends the
   * retained ones) and events. Events are a bonus: a broker that refuses
   * them leaves rings to the calls, which get them too.
   */
  subscribeStatus() {
    const filter = statusFilter(this.prefix);
    this.client.subscribe(filter, { qos: QOS }, (err) => {
      if (err) this.notify("refused", new Error(`The broker refused the subscription to ${filter}: ${err.message}`));
      else this.notify("ready");
    });
    this.client.subscribe(eventFilter(this.prefix), { qos: QOS }, (err, granted) => {
      if (err || granted?.some((g) => g.qos === SUBSCRIPTION_REFUSED)) console.warn("peercam: no device events from the broker; rings come through calls only", err);
    });
  }

  /** A message: to the call whose topic it is, else maybe a device event or status. */
  onMessage(topic, payload) {
    const route = this.routes.get(topic);
    if (route) {
      route(payload);
      return;
    }
    const event = eventUpdate(this.prefix, topic, payload);
    if (event) {
      this.notify("event", event.id, event.event);
      return;
    }
    const update = statusUpdate(this.prefix, topic, payload);
    if (!update) return;
    if (update.device) this.devices.set(update.id, update.device);
    else this.devices.delete(update.id);
    this.notify("devices");
    for (const waiter of this.statusWaiters) if (waiter.id === update.id) waiter.done();
  }

  /**
   * Reads the retained statuses again (subscribing anew makes the broker
   * resend them) and resolves with device `id`'s once it has come, or with
   * what is known (maybe null) after `timeoutMs`. A sealed call the device
   * found stale needs the device's current nonce.
   */
  refreshStatus(id, timeoutMs = STATUS_REFRESH_WAIT_MS) {
    return new Promise((resolve) => {
      const waiter = {
        id,
        done: () => {
          clearTimeout(timer);
          this.statusWaiters.delete(waiter);
          resolve(this.devices.get(id) ?? null);
        },
      };
      const timer = setTimeout(waiter.done, timeoutMs);
      this.statusWaiters.add(waiter);
      this.client.subscribe(statusFilter(this.prefix), { qos: QOS }, () => {});
    });
  }

  /**
   * Subscribes to `topic`, handing its messages to `onMessage`; resolves
   * once the broker granted it, rejects when it refused.
   */
  subscribe(topic, onMessage) {
    this.routes.set(topic, onMessage);
    return new Promise((resolve, reject) => {
      this.client.subscribe(topic, { qos: QOS }, (err, granted) => {
        if (err) reject(err);
        else if (granted?.some((g) => g.qos === SUBSCRIPTION_REFUSED)) reject(new Error(`the broker refused ${topic}`));
        else resolve();
      });
    });
  }

  /** Stops delivering `topic`. */
  unsubscribe(topic) {
    this.routes.delete(topic);
    this.client.unsubscribe(topic);
  }

  /** Publishes `text` on `topic` at QoS 1, not retained. */
  publish(topic, text) {
    this.client.publish(topic, text, { qos: QOS });
  }

  /** Closes the connection at once; the handlers hear nothing more. */
  end() {
    this.ended = true;
    this.routes.clear();
    this.client.end(true);
  }
}
