// How the page says when: local clock times, today, yesterday, or a date.
import assert from "node:assert/strict";
import { test } from "node:test";
import { clock, whenText } from "../js/when.js";

test("clock times read as local HH:MM:SS", () => {
  assert.equal(clock(new Date(2026, 10, 23, 9, 5, 7)), "09:05:07");
  assert.equal(clock(new Date(2026, 10, 23, 23, 59, 0)), "23:59:00");
});

test("today is a time, yesterday says so, anything older has its date", () => {
  const now = new Date(2026, 10, 23, 8, 0, 0);
  assert.equal(whenText(new Date(2026, 10, 23, 0, 0, 1), now), "at 00:00:01");
  assert.equal(whenText(new Date(2026, 10, 22, 23, 59, 59), now), "yesterday at 23:59:59");
  assert.equal(whenText(new Date(2026, 10, 21, 14, 2, 11), now), "on 2026-11-21 at 14:02:11");
  assert.equal(whenText(new Date(2026, 0, 1, 0, 0, 0), new Date(2026, 0, 2, 12, 0, 0)), "yesterday at 00:00:00");
  assert.equal(whenText(new Date(2025, 11, 31, 12, 0, 0), new Date(2026, 0, 1, 1, 0, 0)), "yesterday at 12:00:00", "across a year");
});
