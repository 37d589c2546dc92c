//! The talk-back jitter buffer: packets from the network arrive early,
//! late, twice or not at all; the speaker wants one frame every 20 ms. The
//! buffer holds a small, bounded reserve in RTP order, hands out the next
//! frame on every tick, reports gaps so the decoder can conceal them, and
//! drops rather than grows when packets come faster than they are played.

use std::collections::BTreeMap;
use std::sync::Arc;

/// What to play on one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    /// This packet, which lasts `samples`.
    Play {
        /// The Opus packet.
        packet: Arc<[u8]>,
        /// Its duration in 48 kHz samples.
        samples: u64,
    },
    /// The next packet is missing but later ones are here: conceal one frame.
    Lost,
    /// Nothing to play yet (filling up, or the talker paused): silence.
    Silence,
}

/// What became of a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Stored for playing.
    Stored,
    /// Its time has already been played.
    Late,
    /// A copy of a stored packet.
    Duplicate,
}

/// Bounded reordering buffer keyed by RTP timestamp (48 kHz).
#[derive(Debug, Clone)]
pub(crate) struct JitterBuffer {
    /// Reserve to build up before playing, in samples.
    target: u64,
    /// Most audio held at once, in samples; beyond it the oldest goes.
    capacity: u64,
    /// Duration of a frame when concealing, in samples.
    frame: u64,
    packets: BTreeMap<u64, (Arc<[u8]>, u64)>,
    /// RTP time of the next frame to play, once playing.
    next: Option<u64>,
    /// Everything before this has been played or given up on.
    played_until: Option<u64>,
    /// Packets dropped because the buffer was full.
    pub(crate) overflowed: u64,
}

impl JitterBuffer {
    /// A buffer that starts playing once it holds `target` samples, holds at
    /// most `capacity` samples, and conceals losses `frame` samples at a time.
    pub(crate) fn new(target: u64, capacity: u64, frame: u64) -> Self {
        JitterBuffer {
            target,
            capacity: capacity.max(target + frame),
            frame,
            packets: BTreeMap::new(),
            next: None,
            played_until: None,
            overflowed: 0,
        }
    }

    /// Adds a packet with RTP timestamp `rtp` lasting `samples`.
    pub(crate) fn push(&mut self, rtp: u64, samples: u64, packet: Arc<[u8]>) -> Pushed {
        if self.played_until.is_some_and(|until| rtp < until) {
            return Pushed::Late;
        }
        if self.packets.contains_key(&rtp) {
            return Pushed::Duplicate;
        }
        self.packets.insert(rtp, (packet, samples.max(1)));
        while self.buffered() > self.capacity {
            let Some((oldest, (_, samples))) = self.packets.pop_first() else {
                break;
            };
            self.overflowed += 1;
            self.played_until = Some(oldest + samples);
            if self.next.is_some_and(|next| next < oldest + samples) {
                self.next = self.packets.keys().next().copied();
            }
        }
        Pushed::Stored
    }

    /// Audio held, in samples: from the next frame to play (or the oldest
    /// packet) to the end of the newest.
    pub(crate) fn buffered(&self) -> u64 {
        let (Some((&first, _)), Some((&last, (_, samples)))) = (
            self.packets.first_key_value(),
            self.packets.last_key_value(),
        ) else {
            return 0;
        };
        let start = self.next.map_or(first, |next| next.min(first));
        last + samples - start
    }

    /// The frame for this tick.
    pub(crate) fn pop(&mut self) -> Slot {
        let next = match self.next {
            Some(next) => next,
            None => {
                if self.buffered() < self.target {
                    return Slot::Silence;
                }
                let Some(&first) = self.packets.keys().next() else {
                    return Slot::Silence;
                };
                first
            }
        };
        if let Some((packet, samples)) = self.packets.remove(&next) {
            self.advance(next + samples);
            return Slot::Play { packet, samples };
        }
        match self.packets.keys().next().copied() {
            None => {
                // The talker paused (or stopped): fill up again before playing.
                self.next = None;
                Slot::Silence
            }
            Some(first) if first < next + self.frame => {
                // A packet overlapping this slot (odd durations): resync on it.
                self.next = Some(first);
                self.pop()
            }
            Some(_) => {
                self.advance(next + self.frame);
                Slot::Lost
            }
        }
    }

    /// Forgets everything, e.g. when the floor passes to someone else.
    pub(crate) fn reset(&mut self) {
        self.packets.clear();
        self.next = None;
        self.played_until = None;
    }

    fn advance(&mut self, to: u64) {
        self.next = Some(to);
        self.played_until = Some(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: u64 = 960;

    fn packet(n: u8) -> Arc<[u8]> {
        Arc::from(vec![n])
    }

    fn buffer() -> JitterBuffer {
        JitterBuffer::new(2 * F, 10 * F, F)
    }

    fn played(slot: Slot) -> Option<u8> {
        match slot {
            Slot::Play { packet, .. } => Some(packet[0]),
            _ => None,
        }
    }

    #[test]
    fn fills_to_the_target_then_plays_in_order() {
        let mut jb = buffer();
        jb.push(0, F, packet(0));
        assert_eq!(jb.pop(), Slot::Silence, "below the target reserve");
        jb.push(F, F, packet(1));
        assert_eq!(played(jb.pop()), Some(0));
        jb.push(2 * F, F, packet(2));
        assert_eq!(played(jb.pop()), Some(1));
        assert_eq!(played(jb.pop()), Some(2));
    }

    #[test]
    fn reorders_drops_duplicates_and_late_packets() {
        let mut jb = buffer();
        assert_eq!(jb.push(F, F, packet(1)), Pushed::Stored);
        assert_eq!(jb.push(0, F, packet(0)), Pushed::Stored);
        assert_eq!(jb.push(0, F, packet(0)), Pushed::Duplicate);
        assert_eq!(played(jb.pop()), Some(0));
        assert_eq!(played(jb.pop()), Some(1));
        assert_eq!(jb.push(0, F, packet(0)), Pushed::Late);
        assert_eq!(jb.push(F, F, packet(1)), Pushed::Late);
    }

    #[test]
    fn a_missing_packet_is_concealed_and_a_late_copy_discarded() {
        let mut jb = buffer();
        for n in [0u8, 1, 3, 4] {
            jb.push(u64::from(n) * F, F, packet(n));
        }
        assert_eq!(played(jb.pop()), Some(0));
        assert_eq!(played(jb.pop()), Some(1));
        assert_eq!(jb.pop(), Slot::Lost);
        assert_eq!(jb.push(2 * F, F, packet(2)), Pushed::Late);
        assert_eq!(played(jb.pop()), Some(3));
        assert_eq!(played(jb.pop()), Some(4));
    }

    #[test]
    fn a_pause_refills_before_playing_again() {
        let mut jb = buffer();
        jb.push(0, F, packet(0));
        jb.push(F, F, packet(1));
        jb.pop();
        jb.pop();
        assert_eq!(jb.pop(), Slot::Silence, "talker paused");
        jb.push(50 * F, F, packet(50));
        assert_eq!(jb.pop(), Slot::Silence, "refilling");
        jb.push(51 * F, F, packet(51));
        assert_eq!(played(jb.pop()), Some(50));
    }

    #[test]
    fn a_burst_never_grows_it_past_its_capacity() {
        let mut jb = buffer();
        for n in 0..200u64 {
            jb.push(n * F, F, packet(n as u8));
            assert!(jb.buffered() <= 10 * F, "{} samples held", jb.buffered());
        }
        assert_eq!(jb.overflowed, 190);
        assert_eq!(played(jb.pop()), Some(190), "the oldest went first");
        assert_eq!(jb.push(100 * F, F, packet(100)), Pushed::Late);
    }

    #[test]
    fn reset_forgets_the_previous_talker() {
        let mut jb = buffer();
        jb.push(1_000_000, F, packet(1));
        jb.push(1_000_000 + F, F, packet(2));
        jb.pop();
        jb.reset();
        jb.push(5, F, packet(7));
        jb.push(5 + F, F, packet(8));
        assert_eq!(played(jb.pop()), Some(7));
    }
}
