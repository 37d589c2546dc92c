// The view's pure part: how a device is listed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { deviceLabel } from "../js/view.js";

test("an online device shows its name, id and viewer count", () => {
  assert.equal(deviceLabel({ id: "front", name: "Front door", online: true, viewers: 1, max_viewers: 4 }), "Front door (front) · 1/4 viewers");
  assert.equal(deviceLabel({ id: "front", online: true }), "front · 0/? viewers");
  assert.equal(deviceLabel({ id: "front", online: true, viewers: 2, max_viewers: 2, sealed: true }), "front · 2/2 viewers · sealed");
});

test("a device this browser is paired with says so", () => {
  assert.equal(deviceLabel({ id: "front", online: true, viewers: 0, max_viewers: 4, sealed: true, paired: true }), "front · 0/4 viewers · sealed · paired");
  assert.equal(deviceLabel({ id: "front", online: false, paired: true }), "front · offline · paired");
});

test("an offline device says so instead of counting viewers", () => {
  assert.equal(deviceLabel({ id: "back", name: "Back", online: false, viewers: 3 }), "Back (back) · offline");
});
