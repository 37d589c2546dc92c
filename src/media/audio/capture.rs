//! The microphone to every viewer: 20 ms frames from the capture device,
//! paced by [`CapturePacer`], encoded to Opus (VoIP mode) and published to
//! the audio fan-out. A failing device is reopened with capped backoff;
//! the timeline carries on across reopenings, with a gap for the time lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use audiopus::coder::Encoder;
use audiopus::{Application, Bitrate, Channels, SampleRate};

use super::pacing::CapturePacer;
use super::{FRAME_SAMPLES, OpusPacket, REOPEN_FIRST, REOPEN_MAX, pcm};
use crate::backoff::{Backoff, sleep_unless_stopped};
use crate::media::fanout::Fanout;
use crate::worker::Worker;

/// A device that ran this long counts as healthy again (backoff resets).
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// Largest Opus packet written (well above 20 ms at 510 kbit/s).
const MAX_PACKET: usize = 1500;

/// What the capture thread needs.
#[derive(Debug, Clone)]
pub(crate) struct CaptureSettings {
    /// ALSA capture device name.
    pub(crate) device: String,
    /// Opus target bitrate in bit/s.
    pub(crate) bitrate: i32,
    /// Capture through GStreamer's echo canceller.
    pub(crate) echo_cancel: bool,
}

/// The running microphone; stops its thread when dropped.
pub(crate) struct AudioSource {
    _worker: Worker,
}

impl AudioSource {
    /// Starts capturing into `fanout`. Fails only if Opus refuses the
    /// settings; a missing device is retried in the background.
    pub(crate) fn start(
        settings: CaptureSettings,
        fanout: Arc<Fanout<OpusPacket>>,
    ) -> anyhow::Result<Self> {
        let encoder = opus_encoder(settings.bitrate)?;
        let worker = Worker::spawn("audio-capture", move |stop| {
            supervise(&settings, encoder, &fanout, stop)
        })
        .context("cannot start the audio capture thread")?;
        Ok(AudioSource { _worker: worker })
    }
}

/// A mono 48 kHz VoIP encoder at `bitrate` bit/s.
pub(crate) fn opus_encoder(bitrate: i32) -> anyhow::Result<Encoder> {
    let mut encoder = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip)
        .context("cannot create the Opus encoder")?;
    encoder
        .set_bitrate(Bitrate::BitsPerSecond(bitrate))
        .with_context(|| format!("Opus refused a bitrate of {bitrate} bit/s"))?;
    Ok(encoder)
}

fn supervise(
    settings: &CaptureSettings,
    encoder: Encoder,
    fanout: &Fanout<OpusPacket>,
    stop: &AtomicBool,
) {
    let mut backoff = Backoff::new(REOPEN_FIRST, REOPEN_MAX);
    let mut pacer = CapturePacer::new(Instant::now(), 0);
    let mut frame = vec![0i16; FRAME_SAMPLES];
    let mut packet = vec![0u8; MAX_PACKET];
    while !stop.load(Ordering::Relaxed) {
        let opened = Instant::now();
        match pcm::open_input(&settings.device, settings.echo_cancel) {
            Ok(mut input) => {
                tracing::info!("audio capture from `{}`", settings.device);
                let error = loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Err(e) = input.read(&mut frame) {
                        break e;
                    }
                    let now = Instant::now();
                    let paced = pacer.frame_read(FRAME_SAMPLES as u64, now);
                    if fanout.subscriber_count() > 0 {
                        match encoder.encode(&frame, &mut packet) {
                            Ok(len) => {
                                fanout.publish(OpusPacket {
                                    data: Arc::from(&packet[..len]),
                                    rtp_48khz: paced.rtp,
                                    captured: now,
                                });
                            }
                            Err(e) => tracing::warn!("Opus encoding failed: {e}"),
                        }
                    }
                    std::thread::sleep(paced.wait);
                };
                tracing::warn!("audio capture from `{}` failed: {error:#}", settings.device);
            }
            Err(e) => tracing::warn!("{e:#}"),
        }
        if opened.elapsed() >= HEALTHY_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay(rand::random());
        tracing::info!("reopening the audio capture device in {delay:?}");
        sleep_unless_stopped(delay, stop);
    }
}
