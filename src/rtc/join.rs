//! What a joining viewer is sent first. A call subscribes to the camera when
//! its offer is accepted, which asks the encoder for a keyframe at once; while
//! ICE and DTLS come up, the frames from the freshest keyframe on are kept
//! here, and the moment the call connects they go out, instead of the call
//! starting to wait for a keyframe only then. Pure: time comes in as `now`.

use std::time::{Duration, Instant};

use crate::media::EncodedFrame;

/// A kept keyframe older than this is not sent: its frames would reach the
/// viewer as one burst and hold its picture that far behind for a while. A
/// fresh keyframe is asked for instead (one frame interval and an encode).
pub(crate) const MAX_KEYFRAME_AGE: Duration = Duration::from_millis(150);
/// Frames kept after a keyframe at most (a second at 30 fps); a call that
/// takes longer to connect starts from the next keyframe instead.
const MAX_FRAMES: usize = 30;

/// The frames from the latest keyframe on, while a call connects.
#[derive(Debug, Default)]
pub(crate) struct JoinBuffer {
    frames: Vec<EncodedFrame>,
}

impl JoinBuffer {
    /// Keeps `frame`: a keyframe starts over, a frame without a keyframe
    /// before it is of no use, and past [`MAX_FRAMES`] all are dropped.
    pub(crate) fn push(&mut self, frame: EncodedFrame) {
        if frame.keyframe {
            self.frames.clear();
        } else if self.frames.is_empty() {
            return;
        }
        if self.frames.len() >= MAX_FRAMES {
            self.frames.clear();
            return;
        }
        self.frames.push(frame);
    }

    /// The kept frames, if their keyframe is fresh enough to start from at
    /// `now`; `None` means a new keyframe must be asked for.
    pub(crate) fn take_fresh(self, now: Instant) -> Option<Vec<EncodedFrame>> {
        let keyframe = self.frames.first()?;
        let age = now.saturating_duration_since(keyframe.captured);
        (age <= MAX_KEYFRAME_AGE).then_some(self.frames)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn frame(keyframe: bool, captured: Instant, n: u64) -> EncodedFrame {
        EncodedFrame {
            data: Arc::from(vec![n as u8]),
            pts_90khz: n * 3000,
            captured,
            keyframe,
        }
    }

    fn kept(buffer: JoinBuffer, now: Instant) -> Option<Vec<u64>> {
        buffer
            .take_fresh(now)
            .map(|frames| frames.iter().map(|f| f.pts_90khz / 3000).collect())
    }

    #[test]
    fn keeps_the_frames_from_the_latest_keyframe_on() {
        let t0 = Instant::now();
        let mut buffer = JoinBuffer::default();
        buffer.push(frame(false, t0, 0));
        buffer.push(frame(true, t0, 1));
        buffer.push(frame(false, t0, 2));
        buffer.push(frame(true, t0, 3));
        buffer.push(frame(false, t0, 4));
        assert_eq!(kept(buffer, t0), Some(vec![3, 4]));
    }

    #[test]
    fn a_stale_keyframe_or_none_at_all_means_asking_for_one() {
        let t0 = Instant::now();
        let mut buffer = JoinBuffer::default();
        buffer.push(frame(false, t0, 0));
        assert_eq!(kept(buffer, t0), None, "no keyframe yet");
        let mut buffer = JoinBuffer::default();
        buffer.push(frame(true, t0, 1));
        assert_eq!(kept(buffer, t0 + MAX_KEYFRAME_AGE), Some(vec![1]));
        let mut buffer = JoinBuffer::default();
        buffer.push(frame(true, t0, 1));
        let late = t0 + MAX_KEYFRAME_AGE + Duration::from_millis(1);
        assert_eq!(kept(buffer, late), None, "too old to start from");
    }

    #[test]
    fn a_long_connect_drops_the_frames_and_waits_for_the_next_keyframe() {
        let t0 = Instant::now();
        let mut buffer = JoinBuffer::default();
        buffer.push(frame(true, t0, 0));
        for n in 1..=MAX_FRAMES as u64 {
            buffer.push(frame(false, t0, n));
        }
        assert_eq!(kept(buffer, t0), None);
    }
}
