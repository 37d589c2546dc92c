// The microphone for talk-back, opened silent: the call enables it only
// while this viewer holds the floor.

/** How long an unanswered permission prompt may hold up the call before it goes on without a mic. */
const MIC_WAIT_MS = 10000;

const PROBLEMS = {
  NotAllowedError: "microphone access was not allowed",
  NotFoundError: "no microphone was found",
  NotReadableError: "the microphone is in use or unavailable",
  TimeoutError: "the browser did not get microphone permission in time",
};

/** The note shown when the mic cannot be opened: `error` from getUserMedia, said for a person. */
function micProblemNote(error) {
  const why = PROBLEMS[error.name] ?? error.message;
  return `Talk-back needs a microphone (${why}); you can still watch and listen.`;
}

/** The note shown when this page cannot ask for a mic at all (not a secure context). */
export const NO_MIC_API_NOTE = "Talk-back needs a microphone, and this page cannot ask for one: open it over https:// (or on localhost).";

function namedError(name, message) {
  return Object.assign(new Error(message), { name });
}

/**
 * Opens the microphone as a disabled (silent) track: `{ track, note }`,
 * with `track` null and a `note` for the user when there is none. Bounded
 * by MIC_WAIT_MS so an unanswered prompt never holds up the video.
 */
export async function openMic(mediaDevices = globalThis.navigator?.mediaDevices) {
  if (!mediaDevices?.getUserMedia) return { track: null, note: NO_MIC_API_NOTE };
  const request = mediaDevices.getUserMedia({ audio: true });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(namedError("TimeoutError", "no answer to the permission prompt")), MIC_WAIT_MS);
  });
  try {
    const [track] = (await Promise.race([request, timeout])).getAudioTracks();
    if (!track) throw namedError("NotFoundError", "no audio track");
    track.enabled = false;
    return { track, note: null };
  } catch (e) {
    request.then((stream) => stream.getTracks().forEach((t) => t.stop()), () => {});
    return { track: null, note: micProblemNote(e) };
  } finally {
    clearTimeout(timer);
  }
}
