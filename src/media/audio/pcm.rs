//! Where PCM samples enter and leave: ALSA devices through the `alsa` crate,
//! or, with echo cancellation on, GStreamer's `webrtcdsp` on the microphone
//! and `webrtcechoprobe` on the speaker (the probe feeds what the speaker
//! plays to the canceller). Either way the rest of the audio path sees
//! 48 kHz mono S16 frames of 20 ms.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format, Frames, HwParams, PCM};
use alsa::{Direction, ValueOr};
use anyhow::{Context, anyhow, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::{FRAME_SAMPLES, SAMPLE_RATE};
use crate::media::video;

/// A device that has delivered nothing for this long is treated as dead.
const DEVICE_TIMEOUT_MS: u32 = 1000;
/// The same, as a duration.
const DEVICE_TIMEOUT: Duration = Duration::from_millis(DEVICE_TIMEOUT_MS as u64);
/// Pause after a read that returned no samples.
const EMPTY_READ_BACKOFF: Duration = Duration::from_millis(5);
/// Periods in the ALSA buffer: enough to ride out scheduling hiccups.
const BUFFER_PERIODS: Frames = 4;
/// One period in ALSA's frame type (a C `long`: 32 bits on armv7).
const PERIOD: Frames = FRAME_SAMPLES as Frames;
/// Name the echo canceller finds its probe by.
const ECHO_PROBE: &str = "peercam-echo";

/// A microphone yielding 20 ms frames.
pub(crate) trait PcmIn {
    /// Fills `frame` with the next samples; an error means reopen.
    fn read(&mut self, frame: &mut [i16]) -> anyhow::Result<()>;
}

/// A speaker taking 20 ms frames.
pub(crate) trait PcmOut {
    /// Plays `frame` after what was written before; an error means reopen.
    fn write(&mut self, frame: &[i16]) -> anyhow::Result<()>;
    /// Nothing will be played for a while: let the device go quiet.
    fn pause(&mut self);
}

/// Opens the microphone `device`, through the echo canceller when `echo_cancel`.
pub(crate) fn open_input(device: &str, echo_cancel: bool) -> anyhow::Result<Box<dyn PcmIn>> {
    Ok(if echo_cancel {
        Box::new(GstInput::open(device)?)
    } else {
        Box::new(AlsaInput(open_alsa(device, Direction::Capture)?))
    })
}

/// Opens the speaker `device`, feeding the echo canceller when `echo_cancel`.
pub(crate) fn open_output(device: &str, echo_cancel: bool) -> anyhow::Result<Box<dyn PcmOut>> {
    Ok(if echo_cancel {
        Box::new(GstOutput::open(device)?)
    } else {
        Box::new(AlsaOutput {
            pcm: open_alsa(device, Direction::Playback)?,
        })
    })
}

/// Opens ALSA `device` for `direction` as the daemon would, then closes it.
pub(crate) fn probe(device: &str, direction: Direction) -> anyhow::Result<()> {
    open_alsa(device, direction).map(drop)
}

/// Opens an ALSA PCM for 48 kHz mono S16 with 20 ms periods, non-blocking
/// so a hung device is noticed instead of hanging its thread.
fn open_alsa(device: &str, direction: Direction) -> anyhow::Result<PCM> {
    let what = match direction {
        Direction::Capture => "capture",
        Direction::Playback => "playback",
    };
    let pcm = PCM::new(device, direction, true)
        .with_context(|| format!("cannot open ALSA {what} device `{device}`"))?;
    {
        let hw = HwParams::any(&pcm)?;
        hw.set_access(Access::RWInterleaved)?;
        hw.set_format(Format::s16())
            .with_context(|| format!("`{device}` cannot do 16-bit samples; use a `plug` device"))?;
        hw.set_channels(1)
            .with_context(|| format!("`{device}` cannot do mono; use a `plug` device"))?;
        hw.set_rate(SAMPLE_RATE, ValueOr::Nearest)?;
        hw.set_period_size_near(PERIOD, ValueOr::Nearest)?;
        hw.set_buffer_size_near(PERIOD * BUFFER_PERIODS)?;
        pcm.hw_params(&hw)
            .with_context(|| format!("`{device}` refused 48 kHz mono S16"))?;
        let rate = hw.get_rate()?;
        if rate != SAMPLE_RATE {
            bail!("`{device}` runs at {rate} Hz, not 48000; use a `plug` device to resample");
        }
    }
    {
        let sw = pcm.sw_params_current()?;
        sw.set_start_threshold(PERIOD)?;
        sw.set_avail_min(PERIOD)?;
        pcm.sw_params(&sw)?;
    }
    pcm.prepare()?;
    Ok(pcm)
}

/// Waits for the device; errors out if it stays silent too long.
fn wait_ready(pcm: &PCM) -> anyhow::Result<()> {
    if pcm.wait(Some(DEVICE_TIMEOUT_MS))? {
        Ok(())
    } else {
        Err(anyhow!(
            "the device did not respond for {DEVICE_TIMEOUT_MS} ms"
        ))
    }
}

/// Recovers from an xrun or suspend; anything else is fatal for this open.
fn recover(pcm: &PCM, error: alsa::Error) -> anyhow::Result<()> {
    pcm.try_recover(error, true)
        .with_context(|| format!("ALSA error: {error}"))
}

fn is_would_block(error: &alsa::Error) -> bool {
    error.errno() == libc::EAGAIN
}

struct AlsaInput(PCM);

impl PcmIn for AlsaInput {
    fn read(&mut self, frame: &mut [i16]) -> anyhow::Result<()> {
        let io = self.0.io_i16()?;
        let started = Instant::now();
        let mut filled = 0;
        while filled < frame.len() {
            match io.readi(&mut frame[filled..]) {
                Ok(0) => {
                    // Ready but empty (a plugin whose source ran dry): do
                    // not spin, and give up on a device that stays so.
                    if started.elapsed() > DEVICE_TIMEOUT {
                        bail!("the device delivered no samples for {DEVICE_TIMEOUT:?}");
                    }
                    std::thread::sleep(EMPTY_READ_BACKOFF);
                }
                Ok(n) => filled += n,
                Err(e) if is_would_block(&e) => wait_ready(&self.0)?,
                Err(e) => recover(&self.0, e)?,
            }
        }
        Ok(())
    }
}

struct AlsaOutput {
    pcm: PCM,
}

impl PcmOut for AlsaOutput {
    fn write(&mut self, frame: &[i16]) -> anyhow::Result<()> {
        let io = self.pcm.io_i16()?;
        let mut written = 0;
        while written < frame.len() {
            match io.writei(&frame[written..]) {
                Ok(n) => written += n,
                Err(e) if is_would_block(&e) => wait_ready(&self.pcm)?,
                Err(e) => recover(&self.pcm, e)?,
            }
        }
        Ok(())
    }

    fn pause(&mut self) {
        // Let what was written play out, then stop until the next talker.
        let _ = self.pcm.drain();
        let _ = self.pcm.prepare();
    }
}

/// The caps of every PCM buffer crossing into or out of GStreamer.
fn pcm_caps() -> String {
    format!("audio/x-raw,format=S16LE,rate={SAMPLE_RATE},channels=1,layout=interleaved")
}

/// Parses and starts the pipeline `description`.
fn launch(description: &str) -> anyhow::Result<gst::Pipeline> {
    gst::init().context("GStreamer failed to initialise")?;
    let pipeline = video::parse_pipeline(description)?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| anyhow!("the audio pipeline `{description}` refused to play"))?;
    Ok(pipeline)
}

/// The first error on `pipeline`'s bus, if one is waiting.
fn pipeline_error(pipeline: &gst::Pipeline) -> Option<anyhow::Error> {
    let message = pipeline
        .bus()?
        .pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos])?;
    Some(match message.view() {
        gst::MessageView::Error(e) => anyhow!("{} ({:?})", e.error(), e.debug()),
        _ => anyhow!("the audio pipeline ended"),
    })
}

/// The launch line of the echo-cancelled microphone. The appsink holds
/// back rather than drops, so the capture runs at the pace it is read
/// (which [`super::pacing`] keeps at real time) even on a device that
/// delivers samples faster.
pub(crate) fn echo_input_pipeline(device: &str) -> String {
    format!(
        "alsasrc device=\"{device}\" ! audioconvert ! audioresample ! {caps} \
         ! webrtcdsp probe={ECHO_PROBE} echo-cancel=true noise-suppression=true \
         ! audioconvert ! {caps} ! appsink name=sink sync=false max-buffers=4 drop=false",
        caps = pcm_caps()
    )
}

/// The launch line of the speaker that feeds the echo canceller.
pub(crate) fn echo_output_pipeline(device: &str) -> String {
    format!(
        "appsrc name=src is-live=true format=time do-timestamp=true caps={caps} \
         ! audioconvert ! webrtcechoprobe name={ECHO_PROBE} ! audioconvert ! audioresample \
         ! alsasink device=\"{device}\" sync=false",
        caps = pcm_caps()
    )
}

struct GstInput {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    pending: VecDeque<i16>,
}

impl GstInput {
    fn open(device: &str) -> anyhow::Result<Self> {
        let pipeline = launch(&echo_input_pipeline(device))?;
        let sink = video::element_by_name(&pipeline, "sink")?;
        Ok(GstInput {
            pipeline,
            sink,
            pending: VecDeque::new(),
        })
    }
}

impl PcmIn for GstInput {
    fn read(&mut self, frame: &mut [i16]) -> anyhow::Result<()> {
        while self.pending.len() < frame.len() {
            if let Some(error) = pipeline_error(&self.pipeline) {
                return Err(error);
            }
            let sample = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(u64::from(DEVICE_TIMEOUT_MS)))
                .ok_or_else(|| {
                    anyhow!("no audio from the echo canceller for {DEVICE_TIMEOUT_MS} ms")
                })?;
            let buffer = sample
                .buffer()
                .ok_or_else(|| anyhow!("an audio sample without a buffer"))?;
            let map = buffer.map_readable()?;
            self.pending.extend(
                map.as_slice()
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
            );
        }
        let wanted = frame.len();
        for (slot, sample) in frame.iter_mut().zip(self.pending.drain(..wanted)) {
            *slot = sample;
        }
        Ok(())
    }
}

impl Drop for GstInput {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

struct GstOutput {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
}

impl GstOutput {
    fn open(device: &str) -> anyhow::Result<Self> {
        let pipeline = launch(&echo_output_pipeline(device))?;
        let src = video::element_by_name(&pipeline, "src")?;
        Ok(GstOutput { pipeline, src })
    }
}

impl PcmOut for GstOutput {
    fn write(&mut self, frame: &[i16]) -> anyhow::Result<()> {
        if let Some(error) = pipeline_error(&self.pipeline) {
            return Err(error);
        }
        let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        buffer
            .get_mut()
            .expect("a new buffer is writable")
            .set_duration(gst::ClockTime::from_nseconds(
                frame.len() as u64 * 1_000_000_000 / u64::from(SAMPLE_RATE),
            ));
        self.src
            .push_buffer(buffer)
            .map_err(|e| anyhow!("the speaker pipeline refused audio: {e:?}"))?;
        Ok(())
    }

    fn pause(&mut self) {
        // Nothing plays, so there is no echo to cancel: the pipeline simply
        // waits for the next buffer.
    }
}

impl Drop for GstOutput {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
