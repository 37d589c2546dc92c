//! Talk-back: the floor holder's Opus packets → jitter buffer → decoder →
//! the speaker, one frame per 20 ms tick of the monotonic clock (so an
//! unpaced device cannot run ahead, and a blocking one paces itself). The
//! device opens on the first packet and goes quiet after a pause; voice
//! heard is reported so the floor is not taken back while someone speaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context;
use audiopus::coder::{Decoder, GenericCtl};
use audiopus::{Channels, SampleRate};

use super::jitter::{JitterBuffer, Slot};
use super::pacing::{duration_to_samples, samples_to_duration};
use super::{FRAME_SAMPLES, REOPEN_FIRST, REOPEN_MAX, TalkPacket, pcm, rms};
use crate::backoff::Backoff;
use crate::worker::Worker;

/// Talk-back packets queued between the sessions and the player.
const QUEUE_PACKETS: usize = 64;
/// Extra room above the target reserve before the jitter buffer drops.
const JITTER_HEADROOM: Duration = Duration::from_millis(200);
/// After this long without packets the speaker is let go quiet.
const IDLE_AFTER: Duration = Duration::from_secs(1);
/// A frame louder than this (RMS, full scale 1.0; about -46 dBFS) is voice.
const VOICE_LEVEL: f64 = 0.005;
/// Voice is reported at most this often.
const VOICE_REPORT_EVERY: Duration = Duration::from_secs(1);
/// Falling further behind the clock than this restarts the schedule.
const MAX_BEHIND: Duration = Duration::from_millis(100);
/// Largest decoded packet: 120 ms at 48 kHz.
const MAX_DECODED: usize = 5760;

/// What the player thread needs.
#[derive(Debug, Clone)]
pub(crate) struct PlaybackSettings {
    /// ALSA playback device name.
    pub(crate) device: String,
    /// Reserve the jitter buffer builds before playing.
    pub(crate) jitter_target: Duration,
    /// Play through GStreamer's echo probe.
    pub(crate) echo_cancel: bool,
}

/// Where sessions hand the floor holder's audio; cheap to clone.
#[derive(Clone)]
pub(crate) struct Talkback {
    queue: mpsc::SyncSender<TalkPacket>,
    dropped: Arc<AtomicU64>,
}

impl Talkback {
    /// Queues one packet; drops it if the player is behind.
    pub(crate) fn play(&self, packet: TalkPacket) {
        if self.queue.try_send(packet).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The running player; stops its thread when dropped.
pub(crate) struct Player {
    _worker: Worker,
}

impl Player {
    /// Starts the player; sessions whose voice is heard are sent to `voice`.
    pub(crate) fn start(
        settings: PlaybackSettings,
        voice: async_channel::Sender<Arc<str>>,
    ) -> anyhow::Result<(Player, Talkback)> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_PACKETS);
        let decoder = Decoder::new(SampleRate::Hz48000, Channels::Mono)
            .context("cannot create the Opus decoder")?;
        let dropped = Arc::new(AtomicU64::new(0));
        let queue_drops = Arc::clone(&dropped);
        let worker = Worker::spawn("audio-playback", move |stop| {
            PlayerLoop::new(settings, decoder, voice, queue_drops).run(&rx, stop)
        })
        .context("cannot start the audio playback thread")?;
        let talkback = Talkback { queue: tx, dropped };
        Ok((Player { _worker: worker }, talkback))
    }
}

struct PlayerLoop {
    settings: PlaybackSettings,
    decoder: Decoder,
    jitter: JitterBuffer,
    talker: Option<Arc<str>>,
    voice: async_channel::Sender<Arc<str>>,
    last_voice_report: Option<Instant>,
    output: Option<Box<dyn pcm::PcmOut>>,
    reopen_at: Instant,
    backoff: Backoff,
    last_packet: Instant,
    pcm: Vec<i16>,
    spurt: SpurtStats,
    /// Packets the sessions could not queue because the player was behind.
    queue_drops: Arc<AtomicU64>,
}

/// What one stretch of talk-back looked like, for the log.
#[derive(Debug, Default)]
struct SpurtStats {
    played: u64,
    concealed: u64,
    /// Sum over played frames of the audio queued behind each.
    reserve_samples: u64,
}

impl PlayerLoop {
    fn new(
        settings: PlaybackSettings,
        decoder: Decoder,
        voice: async_channel::Sender<Arc<str>>,
        queue_drops: Arc<AtomicU64>,
    ) -> Self {
        let target = duration_to_samples(settings.jitter_target);
        let capacity = target + duration_to_samples(JITTER_HEADROOM);
        PlayerLoop {
            jitter: JitterBuffer::new(target, capacity, FRAME_SAMPLES as u64),
            settings,
            decoder,
            talker: None,
            voice,
            last_voice_report: None,
            output: None,
            reopen_at: Instant::now(),
            backoff: Backoff::new(REOPEN_FIRST, REOPEN_MAX),
            last_packet: Instant::now(),
            pcm: vec![0; MAX_DECODED],
            spurt: SpurtStats::default(),
            queue_drops,
        }
    }

    fn run(mut self, queue: &mpsc::Receiver<TalkPacket>, stop: &AtomicBool) {
        if self.settings.echo_cancel {
            // The echo canceller on the microphone needs its probe on the
            // speaker running before it starts.
            self.pcm[..FRAME_SAMPLES].fill(0);
            self.write(FRAME_SAMPLES, Instant::now());
        }
        let mut next_tick: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let tick = match next_tick {
                Some(tick) => tick,
                None => match queue.recv_timeout(Duration::from_millis(200)) {
                    Ok(packet) => {
                        self.accept(packet);
                        Instant::now()
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            };
            while let Ok(packet) = queue.try_recv() {
                self.accept(packet);
            }
            let now = Instant::now();
            let played = self.play_one(now);
            let mut next = tick + samples_to_duration(played as u64);
            if now > next + MAX_BEHIND {
                next = now;
            }
            if now > self.last_packet + IDLE_AFTER && self.jitter.buffered() == 0 {
                if let Some(output) = self.output.as_mut() {
                    output.pause();
                }
                self.log_spurt();
                next_tick = None;
                continue;
            }
            next_tick = Some(next);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// Takes a packet into the jitter buffer, starting afresh for a new talker.
    fn accept(&mut self, packet: TalkPacket) {
        if self.talker.as_deref() != Some(&*packet.session) {
            self.jitter.reset();
            let _ = self.decoder.reset_state();
            self.talker = Some(Arc::clone(&packet.session));
        }
        let Ok(samples) = audiopus::packet::nb_samples(&packet.data[..], SampleRate::Hz48000)
        else {
            return;
        };
        self.last_packet = Instant::now();
        self.jitter
            .push(packet.rtp_48khz, samples as u64, packet.data);
    }

    /// Decodes and plays one slot; returns how many samples it lasted.
    fn play_one(&mut self, now: Instant) -> usize {
        // What waits behind the frame played now: the delay the buffer adds.
        let reserve = self.jitter.buffered().saturating_sub(FRAME_SAMPLES as u64);
        let decoded = match self.jitter.pop() {
            Slot::Play { packet, .. } => {
                self.spurt.played += 1;
                self.spurt.reserve_samples += reserve;
                self.decode(Some(&packet))
            }
            Slot::Lost => {
                self.spurt.concealed += 1;
                self.decode(None)
            }
            Slot::Silence => {
                self.pcm[..FRAME_SAMPLES].fill(0);
                FRAME_SAMPLES
            }
        };
        if rms(&self.pcm[..decoded]) > VOICE_LEVEL {
            self.report_voice(now);
        }
        self.write(decoded, now);
        decoded
    }

    /// Decodes `input` (or conceals a loss) into `self.pcm`.
    fn decode(&mut self, input: Option<&[u8]>) -> usize {
        let output = if input.is_some() {
            &mut self.pcm[..]
        } else {
            &mut self.pcm[..FRAME_SAMPLES]
        };
        match self.decoder.decode(input, output, false) {
            Ok(n) if n > 0 => n,
            _ => {
                self.pcm[..FRAME_SAMPLES].fill(0);
                FRAME_SAMPLES
            }
        }
    }

    /// Logs how the talk-back that just ended went: what the jitter buffer
    /// cost in delay and how much it had to conceal.
    fn log_spurt(&mut self) {
        let spurt = std::mem::take(&mut self.spurt);
        if spurt.played == 0 {
            return;
        }
        let reserve = samples_to_duration(spurt.reserve_samples / spurt.played);
        tracing::info!(
            "talk-back: {} frames played, {} concealed, {} dropped as overflow, {} dropped \
             before the player; jitter buffer held {reserve:?} on average",
            spurt.played,
            spurt.concealed,
            self.jitter.overflowed,
            self.queue_drops.load(Ordering::Relaxed)
        );
    }

    fn report_voice(&mut self, now: Instant) {
        let due = self
            .last_voice_report
            .is_none_or(|last| now.saturating_duration_since(last) >= VOICE_REPORT_EVERY);
        if let (true, Some(talker)) = (due, &self.talker) {
            tracing::debug!("talk-back: voice from {talker} goes to the speaker");
            self.last_voice_report = Some(now);
            let _ = self.voice.try_send(Arc::clone(talker));
        }
    }

    /// Writes the decoded samples, opening (or reopening) the device as needed.
    fn write(&mut self, samples: usize, now: Instant) {
        if self.output.is_none() && now >= self.reopen_at {
            match pcm::open_output(&self.settings.device, self.settings.echo_cancel) {
                Ok(output) => {
                    tracing::info!("talk-back plays on `{}`", self.settings.device);
                    self.output = Some(output);
                    self.backoff.reset();
                }
                Err(e) => {
                    let delay = self.backoff.next_delay(rand::random());
                    tracing::warn!("{e:#}; retrying in {delay:?}");
                    self.reopen_at = now + delay;
                }
            }
        }
        let Some(output) = self.output.as_mut() else {
            return;
        };
        if let Err(e) = output.write(&self.pcm[..samples]) {
            let delay = self.backoff.next_delay(rand::random());
            tracing::warn!(
                "talk-back on `{}` failed: {e:#}; reopening in {delay:?}",
                self.settings.device
            );
            self.output = None;
            self.reopen_at = now + delay;
        }
    }
}
