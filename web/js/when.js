// How the page says when something happened, in the phone's local time:
// a ring, the moment a doorbell went offline or was last seen. Pure: the
// caller passes the current time, so the tests pin it.

const MS_PER_DAY = 24 * 60 * 60 * 1000;

const pad = (n) => String(n).padStart(2, "0");

/** `HH:MM:SS` in local time. */
export function clock(date) {
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map(pad).join(":");
}

/** The local calendar day of `date` as a number, to tell today from yesterday across a DST change. */
function dayNumber(date) {
  return Math.round(Date.UTC(date.getFullYear(), date.getMonth(), date.getDate()) / MS_PER_DAY);
}

/**
 * When `date` was, seen from `now`: `at 14:02:11` today, `yesterday at
 * 14:02:11`, else `on 2026-11-23 at 14:02:11` (an unambiguous date in any
 * locale).
 */
export function whenText(date, now) {
  const days = dayNumber(now) - dayNumber(date);
  if (days === 0) return `at ${clock(date)}`;
  if (days === 1) return `yesterday at ${clock(date)}`;
  return `on ${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} at ${clock(date)}`;
}
