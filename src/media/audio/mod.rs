//! Two-way audio for the doorbell. Out: the device's microphone (ALSA, or
//! GStreamer with echo cancellation) → Opus → the same fan-out as video.
//! Back: the floor holder's Opus → jitter buffer → decoder → speaker.
//! Both run on their own threads, paced by the clock, and reopen their
//! device with backoff when it fails, so video never waits for audio.

pub(crate) mod capture;
pub(crate) mod jitter;
pub(crate) mod pacing;
pub(crate) mod pcm;
pub(crate) mod playback;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fanout;

/// The one sample rate of the audio path (Opus's native rate).
pub(crate) const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms mono frame: the capture period and Opus frame.
pub(crate) const FRAME_SAMPLES: usize = 960;

/// First wait before reopening a device that failed.
pub(crate) const REOPEN_FIRST: Duration = Duration::from_millis(500);
/// Longest wait between reopening attempts.
pub(crate) const REOPEN_MAX: Duration = Duration::from_secs(30);

/// One encoded 20 ms Opus frame of the device's microphone.
#[derive(Debug, Clone)]
pub(crate) struct OpusPacket {
    /// The Opus packet, shared by every viewer.
    pub(crate) data: Arc<[u8]>,
    /// RTP timestamp at 48 kHz, from the capture sample count.
    pub(crate) rtp_48khz: u64,
    /// When the frame was captured, on the monotonic clock.
    pub(crate) captured: Instant,
}

impl fanout::Frame for OpusPacket {
    fn is_keyframe(&self) -> bool {
        true
    }
}

/// One Opus packet of talk-back audio from a viewer's session.
#[derive(Debug, Clone)]
pub(crate) struct TalkPacket {
    /// The session it came from (the floor holder).
    pub(crate) session: Arc<str>,
    /// RTP timestamp at 48 kHz.
    pub(crate) rtp_48khz: u64,
    /// The Opus packet.
    pub(crate) data: Arc<[u8]>,
}

/// Root-mean-square level of `samples` relative to full scale (0.0–1.0).
pub(crate) fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt() / f64::from(i16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_of_silence_and_full_scale() {
        assert_eq!(rms(&[]), 0.0);
        assert_eq!(rms(&[0; 960]), 0.0);
        assert!((rms(&[i16::MAX; 960]) - 1.0).abs() < 1e-9);
        let square: Vec<i16> = (0..960)
            .map(|n| if n % 2 == 0 { 16384 } else { -16384 })
            .collect();
        assert!((rms(&square) - 0.5).abs() < 1e-3);
    }
}
