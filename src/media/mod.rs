//! Media sources and their distribution to viewers.

pub(crate) mod audio;
pub(crate) mod fanout;
pub(crate) mod glass;
pub(crate) mod video;

use std::sync::Arc;
use std::time::Instant;

/// One encoded H.264 access unit (Annex-B), as every viewer receives it.
#[derive(Debug, Clone)]
pub(crate) struct EncodedFrame {
    /// Annex-B bytes; keyframes carry SPS/PPS in-band. Shared by every
    /// viewer: the packetizer takes it without a copy.
    pub(crate) data: Arc<[u8]>,
    /// Presentation time in 90 kHz ticks from the capture clock.
    pub(crate) pts_90khz: u64,
    /// When the frame left the encoder, on the monotonic clock.
    pub(crate) captured: Instant,
    /// Whether decoding can start here.
    pub(crate) keyframe: bool,
}

impl fanout::Frame for EncodedFrame {
    fn is_keyframe(&self) -> bool {
        self.keyframe
    }
}
