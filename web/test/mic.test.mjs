// The talk-back mic: opened silent, or a note saying why there is none.
import assert from "node:assert/strict";
import { test } from "node:test";
import { NO_MIC_API_NOTE, openMic } from "../js/mic.js";

function stream(tracks) {
  return { getAudioTracks: () => tracks, getTracks: () => tracks };
}

test("the mic opens disabled, so nothing is sent before the floor is granted", async () => {
  const track = { kind: "audio", enabled: true };
  const asked = [];
  const { track: opened, note } = await openMic({ getUserMedia: async (constraints) => (asked.push(constraints), stream([track])) });
  assert.equal(opened, track);
  assert.equal(opened.enabled, false);
  assert.equal(note, null);
  assert.deepEqual(asked, [{ audio: true }]);
});

test("a page that cannot ask for a mic says to use https", async () => {
  assert.deepEqual(await openMic(undefined), { track: null, note: NO_MIC_API_NOTE });
  assert.match(NO_MIC_API_NOTE, /https:\/\//);
});

test("a refused or missing mic becomes a note, and the call goes on without it", async () => {
  const refuse = (name) => ({ getUserMedia: async () => { throw Object.assign(new Error("x"), { name }); } });
  assert.match((await openMic(refuse("NotAllowedError"))).note, /microphone access was not allowed\); you can still watch and listen/);
  assert.match((await openMic(refuse("NotReadableError"))).note, /in use or unavailable/);
  assert.match((await openMic({ getUserMedia: async () => stream([]) })).note, /no microphone was found/);
  const odd = await openMic({ getUserMedia: async () => { throw new Error("something odd"); } });
  assert.deepEqual(odd, { track: null, note: "Talk-back needs a microphone (something odd); you can still watch and listen." });
});
