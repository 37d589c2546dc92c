//! The camera side: a GStreamer pipeline per configured preset, ending in an
//! appsink that hands whole H.264 access units to the fan-out. The pipeline
//! runs on its own thread and is rebuilt with capped backoff if it dies.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::VideoFrameExt;

use super::EncodedFrame;
use super::fanout::{Fanout, KeyframeGate};
use super::glass;
use crate::backoff::{Backoff, sleep_unless_stopped};
use crate::config::{InputFormat, SourceKind, VideoConfig};
use crate::worker::Worker;

/// Keyframe requests closer together than this are merged into one.
const KEYFRAME_COALESCE: Duration = Duration::from_millis(100);
/// Timeline gap left between the last frame of a pipeline and the first of its restart.
const RESTART_GAP_90KHZ: u64 = 3000;
/// A pipeline that ran this long counts as healthy again (backoff resets).
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// The tail every preset ends in: in-band SPS/PPS on every keyframe and
/// one access unit per buffer, as str0m's H.264 packetizer wants them.
const H264_TAIL: &str = "h264parse config-interval=-1 \
    ! video/x-h264,stream-format=byte-stream,alignment=au \
    ! appsink name=sink sync=false max-buffers=8 drop=true";

/// What to do about a missing GStreamer element: the Debian package that
/// provides it, when it is one the presets use.
pub(crate) fn install_hint(element: &str) -> String {
    let package = match element {
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "h264parse" | "openh264enc" => "gstreamer1.0-plugins-bad",
        "v4l2src" | "v4l2h264enc" | "jpegdec" => "gstreamer1.0-plugins-good",
        "libcamerasrc" => "gstreamer1.0-libcamera",
        "videotestsrc" | "videoconvert" | "appsink" | "appsrc" | "audioconvert"
        | "audioresample" => "gstreamer1.0-plugins-base",
        "alsasrc" | "alsasink" => "gstreamer1.0-alsa",
        "webrtcdsp" | "webrtcechoprobe" => "gstreamer1.0-plugins-bad",
        _ => return format!("check the name with `gst-inspect-1.0 {element}`"),
    };
    format!("install {package}")
}

/// The software H.264 encoder fragment for raw frames, tuned for latency.
fn x264(config: &VideoConfig) -> String {
    format!(
        "videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast bitrate={} \
         key-int-max={} ! video/x-h264,profile=constrained-baseline",
        config.bitrate_kbps, config.keyframe_interval
    )
}

/// The Raspberry Pi hardware encoder fragment (Pi Zero 2 to Pi 4).
fn pi_hw_encoder(config: &VideoConfig) -> String {
    format!(
        "v4l2h264enc extra-controls=\"controls,repeat_sequence_header=1,video_bitrate={},\
         h264_i_frame_period={}\" ! video/x-h264,level=(string)4",
        config.bitrate_kbps * 1000,
        config.keyframe_interval
    )
}

/// The GStreamer launch line for `config`, with the V4L2 camera's format
/// already resolved (see [`probe_v4l2_format`]) and `hw_encoder` telling
/// whether the Pi hardware encoder exists (for `libcamera`).
pub(crate) fn pipeline_description(
    config: &VideoConfig,
    v4l2_format: InputFormat,
    hw_encoder: bool,
) -> String {
    let (w, h, fps) = (config.width, config.height, config.fps);
    let raw_caps = format!("video/x-raw,width={w},height={h},framerate={fps}/1");
    let device = config.device.display();
    let head = match config.source {
        SourceKind::Pipeline => return config.pipeline.clone().unwrap_or_default(),
        SourceKind::Test => format!(
            "videotestsrc is-live=true pattern=smpte ! {raw_caps},format=I420 \
             ! identity name={GLASS_STAMP} ! {}",
            x264(config)
        ),
        SourceKind::V4l2 => match v4l2_format {
            InputFormat::H264 => format!(
                "v4l2src device={device} ! video/x-h264,width={w},height={h},framerate={fps}/1"
            ),
            InputFormat::Mjpeg => format!(
                "v4l2src device={device} ! image/jpeg,width={w},height={h},framerate={fps}/1 \
                 ! jpegdec ! {}",
                x264(config)
            ),
            InputFormat::Raw | InputFormat::Auto => {
                format!("v4l2src device={device} ! {raw_caps} ! {}", x264(config))
            }
        },
        SourceKind::PiHw => format!(
            "v4l2src device={device} ! {raw_caps},format=I420 ! {}",
            pi_hw_encoder(config)
        ),
        SourceKind::Libcamera => {
            let encoder = if hw_encoder {
                pi_hw_encoder(config)
            } else {
                x264(config)
            };
            format!("libcamerasrc ! {raw_caps},format=NV12 ! {encoder}")
        }
    };
    format!("{head} ! {H264_TAIL}")
}

/// Element names a launch line uses, in order.
pub(crate) fn elements_in(description: &str) -> Vec<String> {
    description
        .split('!')
        .filter_map(|stage| stage.split_whitespace().next())
        .filter(|name| !name.contains(['/', '(', '"']))
        .map(str::to_owned)
        .collect()
}

/// Elements of `description` that this machine's GStreamer lacks.
pub(crate) fn missing_elements(description: &str) -> Vec<String> {
    elements_in(description)
        .into_iter()
        .filter(|name| gst::ElementFactory::find(name).is_none())
        .collect()
}

/// Asks the camera what it can send: H.264, else MJPEG, else raw.
pub(crate) fn probe_v4l2_format(config: &VideoConfig) -> anyhow::Result<InputFormat> {
    if config.input_format != InputFormat::Auto {
        return Ok(config.input_format);
    }
    let formats = camera_formats(&config.device)?;
    let offers = |name: &str| formats.iter().any(|f| f == name);
    Ok(if offers("video/x-h264") {
        InputFormat::H264
    } else if offers("image/jpeg") {
        InputFormat::Mjpeg
    } else {
        InputFormat::Raw
    })
}

/// The media types (`video/x-h264`, `image/jpeg`, `video/x-raw`, ...) a
/// V4L2 capture device offers, without starting a capture.
pub(crate) fn camera_formats(device: &Path) -> anyhow::Result<Vec<String>> {
    gst::init().context("GStreamer failed to initialise")?;
    let src = gst::ElementFactory::make("v4l2src")
        .property("device", device.to_string_lossy().as_ref())
        .build()
        .context("GStreamer element `v4l2src` is missing: install gstreamer1.0-plugins-good")?;
    src.set_state(gst::State::Ready).map_err(|_| {
        anyhow!(
            "camera {} cannot be opened (missing, not a capture device, or busy in another program?)",
            device.display()
        )
    })?;
    let caps = src.static_pad("src").map(|pad| pad.query_caps(None));
    let _ = src.set_state(gst::State::Null);
    let caps = caps.ok_or_else(|| anyhow!("v4l2src has no source pad"))?;
    let mut formats: Vec<String> = caps.iter().map(|s| s.name().to_string()).collect();
    formats.dedup();
    Ok(formats)
}

/// Resolves the launch line for `config` on this machine and checks that
/// every element exists, naming the package to install when one does not.
pub(crate) fn resolve_pipeline(config: &VideoConfig) -> anyhow::Result<String> {
    gst::init().context("GStreamer failed to initialise")?;
    let format = if config.source == SourceKind::V4l2 {
        probe_v4l2_format(config)?
    } else {
        config.input_format
    };
    let hw_encoder = gst::ElementFactory::find("v4l2h264enc").is_some();
    let description = pipeline_description(config, format, hw_encoder);
    if let Some(missing) = missing_elements(&description).first() {
        bail!(
            "video source `{}` needs the GStreamer element `{missing}`, which is not installed \
             ({})",
            source_name(config.source),
            install_hint(missing)
        );
    }
    Ok(description)
}

/// The name of `kind` as written in the config file.
pub(crate) fn source_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Test => "test",
        SourceKind::V4l2 => "v4l2",
        SourceKind::PiHw => "pi-hw",
        SourceKind::Libcamera => "libcamera",
        SourceKind::Pipeline => "pipeline",
    }
}

/// How long the camera may send nothing while playing before its pipeline
/// is rebuilt: a camera that stops without a bus error (a USB hiccup, a
/// stalled driver) would otherwise freeze every viewer forever.
pub(crate) const FRAME_STALL_LIMIT: Duration = Duration::from_secs(5);
/// The camera thread counts as stuck (and the service watchdog goes
/// unfed) when it has not looked up for this long.
pub(crate) const THREAD_STUCK_AFTER: Duration = Duration::from_secs(10);
/// How often the camera thread looks up from the pipeline's bus.
const BUS_POLL: Duration = Duration::from_millis(100);

/// What the camera is doing, for the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CameraState {
    /// Building the first pipeline.
    Starting,
    /// Frames are flowing.
    Streaming,
    /// The pipeline failed for this reason and is being rebuilt.
    Retrying(String),
}

/// The camera thread's report: its state, and when it last looked up.
pub(crate) struct CameraHealth {
    state: Mutex<(CameraState, Instant)>,
    changed: Condvar,
}

impl CameraHealth {
    fn new() -> Self {
        CameraHealth {
            state: Mutex::new((CameraState::Starting, Instant::now())),
            changed: Condvar::new(),
        }
    }

    /// The camera's state, and whether its thread looked up within
    /// [`THREAD_STUCK_AFTER`] of `now` (the watchdog is fed only then).
    pub(crate) fn report(&self, now: Instant) -> (CameraState, bool) {
        let (state, beat) = &*self.lock();
        let alive = now.saturating_duration_since(*beat) < THREAD_STUCK_AFTER;
        (state.clone(), alive)
    }

    /// Waits up to `timeout` for a state that `want` accepts; returns the last state.
    #[cfg(test)]
    fn wait_for(&self, timeout: Duration, want: impl Fn(&CameraState) -> bool) -> CameraState {
        let guard = self.lock();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |(state, _)| !want(state))
            .unwrap_or_else(PoisonError::into_inner);
        guard.0.clone()
    }

    /// The thread is alive now, in `state` (unchanged when `None`).
    fn beat(&self, state: Option<CameraState>) {
        let mut guard = self.lock();
        guard.1 = Instant::now();
        if let Some(state) = state
            && guard.0 != state
        {
            guard.0 = state;
            self.changed.notify_all();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (CameraState, Instant)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running video source; stops its pipeline when dropped.
pub(crate) struct VideoSource {
    health: Arc<CameraHealth>,
    _worker: Worker,
}

impl VideoSource {
    /// Starts the camera thread: it builds the pipeline `describe` gives
    /// and feeds `fanout`, and rebuilds it with capped backoff whenever it
    /// fails or stalls, starting with the first try (a camera plugged in
    /// after boot is picked up). Fails only when the thread cannot start.
    pub(crate) fn start(
        describe: impl FnMut() -> anyhow::Result<String> + Send + 'static,
        fanout: Arc<Fanout<EncodedFrame>>,
    ) -> anyhow::Result<Self> {
        gst::init().context("GStreamer failed to initialise")?;
        let health = Arc::new(CameraHealth::new());
        let worker = Worker::spawn("video-source", {
            let health = Arc::clone(&health);
            move |stop| supervise(describe, &fanout, stop, &health)
        })
        .context("cannot start the video thread")?;
        Ok(VideoSource {
            health,
            _worker: worker,
        })
    }

    /// The camera thread's report.
    pub(crate) fn health(&self) -> Arc<CameraHealth> {
        Arc::clone(&self.health)
    }
}

/// Runs the pipeline until `stop`, rebuilding it after failures.
fn supervise(
    mut describe: impl FnMut() -> anyhow::Result<String>,
    fanout: &Arc<Fanout<EncodedFrame>>,
    stop: &AtomicBool,
    health: &CameraHealth,
) {
    let timeline = Arc::new(AtomicU64::new(0));
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    while !stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        let result = describe().and_then(|d| run_pipeline(&d, fanout, stop, health, &timeline));
        let Err(error) = result else { return };
        if began.elapsed() >= HEALTHY_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay(rand::random());
        tracing::error!("video source failed: {error:#}; restarting in {delay:?}");
        health.beat(Some(CameraState::Retrying(format!("{error:#}"))));
        let until = Instant::now() + delay;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            sleep_unless_stopped(BUS_POLL, stop);
            health.beat(None);
        }
    }
}

/// One pipeline lifetime: Ok when stopped on request, Err when it failed or
/// stopped delivering frames.
fn run_pipeline(
    description: &str,
    fanout: &Arc<Fanout<EncodedFrame>>,
    stop: &AtomicBool,
    health: &CameraHealth,
    timeline: &Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let pipeline = parse_pipeline(description)?;
    let guard = StopOnDrop(pipeline.clone());
    let sink: gst_app::AppSink = element_by_name(&pipeline, "sink")?;
    if let Some(stamp) = pipeline.by_name(GLASS_STAMP) {
        install_glass_stamp(&stamp);
    }
    let last_frame = Arc::new(Mutex::new(None::<Instant>));
    install_callbacks(
        &sink,
        Arc::clone(fanout),
        Arc::clone(timeline),
        Arc::clone(&last_frame),
    );
    let bus = pipeline
        .bus()
        .ok_or_else(|| anyhow!("pipeline without a bus"))?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        return Err(bus_error(&bus).unwrap_or_else(|| anyhow!("the pipeline refused to play")));
    }
    let playing_since = Instant::now();
    let mut streaming = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            drop(guard);
            return Ok(());
        }
        let message = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(BUS_POLL.as_millis() as u64),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        );
        match message.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(e)) => return Err(describe_error(e)),
            Some(gst::MessageView::Eos(_)) => bail!("the video source ended (end of stream)"),
            _ => {}
        }
        let last = *last_frame.lock().unwrap_or_else(PoisonError::into_inner);
        let silent_since = last.unwrap_or(playing_since);
        if silent_since.elapsed() >= FRAME_STALL_LIMIT {
            bail!(
                "the camera sent no frame for {} s",
                FRAME_STALL_LIMIT.as_secs()
            );
        }
        if last.is_some() && !streaming {
            streaming = true;
            tracing::info!("video pipeline playing: {description}");
        }
        health.beat(streaming.then_some(CameraState::Streaming));
    }
}

/// Parses the launch line `description` into a pipeline.
pub(crate) fn parse_pipeline(description: &str) -> anyhow::Result<gst::Pipeline> {
    gst::parse::launch(description)
        .with_context(|| format!("invalid pipeline `{description}`"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("`{description}` is not a pipeline"))
}

/// The element called `name` in `pipeline`, as the type the code drives it as.
pub(crate) fn element_by_name<T: IsA<gst::Element>>(
    pipeline: &gst::Pipeline,
    name: &str,
) -> anyhow::Result<T> {
    pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<T>().ok())
        .ok_or_else(|| anyhow!("the pipeline has no suitable element `name={name}`"))
}

/// Pipelines being torn down on their own threads at most, beyond which
/// teardown happens on the camera thread (and a teardown that hangs there
/// starves the service watchdog, so systemd restarts the daemon).
const MAX_DETACHED_TEARDOWNS: usize = 4;

/// Sets the pipeline to NULL however the run ends, on a thread of its own:
/// a source blocked in a read it cannot interrupt (a stalled camera driver,
/// a FIFO whose writer stopped) would otherwise hold the camera thread and
/// keep the next pipeline from starting.
struct StopOnDrop(gst::Pipeline);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        static TEARING_DOWN: AtomicUsize = AtomicUsize::new(0);
        let pipeline = self.0.clone();
        if TEARING_DOWN.fetch_add(1, Ordering::AcqRel) < MAX_DETACHED_TEARDOWNS {
            let spawned = std::thread::Builder::new()
                .name("video-teardown".into())
                .spawn(move || {
                    let _ = pipeline.set_state(gst::State::Null);
                    TEARING_DOWN.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_ok() {
                return;
            }
        }
        TEARING_DOWN.fetch_sub(1, Ordering::AcqRel);
        let _ = self.0.set_state(gst::State::Null);
    }
}

fn bus_error(bus: &gst::Bus) -> Option<anyhow::Error> {
    let message =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(e) => Some(describe_error(e)),
        _ => None,
    }
}

fn describe_error(e: &gst::message::Error) -> anyhow::Error {
    let element = e.src().map(|s| s.name().to_string()).unwrap_or_default();
    match e.debug() {
        Some(debug) => anyhow!("{} (in {element}; {debug})", e.error()),
        None => anyhow!("{} (in {element})", e.error()),
    }
}

/// The element of the test source whose frames get the glass stamp.
const GLASS_STAMP: &str = "glass_stamp";

/// Draws each frame's wall-clock time into it as it leaves `element` (the
/// test source, before the encoder): see [`glass`].
fn install_glass_stamp(element: &gst::Element) {
    let Some(pad) = element.static_pad("src") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, |pad, probe| {
        let info = pad
            .current_caps()
            .and_then(|caps| gst_video::VideoInfo::from_caps(&caps).ok());
        if let (Some(info), Some(buffer)) = (info, probe.buffer_mut()) {
            let millis = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u32);
            if let Ok(mut frame) =
                gst_video::VideoFrameRef::from_buffer_ref_writable(buffer.make_mut(), &info)
            {
                let size = (frame.width() as usize, frame.height() as usize);
                let strides = frame.plane_stride();
                let stride = |plane: usize| strides[plane] as usize;
                let (y, u, v) = (stride(0), stride(1), stride(2));
                let mut planes = frame.planes_data_mut();
                if let [luma, cb, cr, ..] = planes.as_mut_slice() {
                    glass::stamp(
                        glass::Plane {
                            data: luma,
                            stride: y,
                        },
                        glass::Plane {
                            data: cb,
                            stride: u,
                        },
                        glass::Plane {
                            data: cr,
                            stride: v,
                        },
                        size,
                        millis,
                    );
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Hands each access unit to the fan-out and forces a keyframe upstream
/// when a viewer is waiting for one. `timeline` holds the last published
/// PTS (90 kHz), so a restarted pipeline continues the same timeline and
/// viewers' RTP timestamps never go backwards.
fn install_callbacks(
    sink: &gst_app::AppSink,
    fanout: Arc<Fanout<EncodedFrame>>,
    timeline: Arc<AtomicU64>,
    last_frame: Arc<Mutex<Option<Instant>>>,
) {
    let gate = Arc::new(Mutex::new(KeyframeGate::new(KEYFRAME_COALESCE)));
    fanout.on_keyframe_wanted({
        let gate = Arc::clone(&gate);
        let sink = sink.downgrade();
        move || {
            let due = gate
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .should_force(true, Instant::now());
            if due && let Some(sink) = sink.upgrade() {
                force_key_unit(&sink);
            }
        }
    });
    // The first frame's PTS and arrival: later frames are timed from it.
    let first = Mutex::new(None::<(gst::ClockTime, Instant)>);
    let previous = timeline.load(Ordering::Relaxed);
    let offset = if previous == 0 {
        0
    } else {
        previous + RESTART_GAP_90KHZ
    };
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let now = Instant::now();
                *last_frame.lock().unwrap_or_else(PoisonError::into_inner) = Some(now);
                let (first_pts, first_at) = *first
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert((buffer.pts().unwrap_or(gst::ClockTime::ZERO), now));
                // A stream without timestamps (raw H.264 from a file or a
                // pipe) is timed by when its frames arrive.
                let elapsed_ns = match buffer.pts() {
                    Some(pts) => pts.saturating_sub(first_pts).nseconds(),
                    None => now.saturating_duration_since(first_at).as_nanos() as u64,
                };
                let pts_90khz = offset + elapsed_ns * 9 / 100_000;
                timeline.store(pts_90khz, Ordering::Relaxed);
                let frame = EncodedFrame {
                    data: Arc::from(map.as_slice()),
                    pts_90khz,
                    captured: now,
                    keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                };
                let wanted = fanout.publish(frame);
                let force = gate
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .should_force(wanted, now);
                if force {
                    force_key_unit(sink);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// Asks the encoder upstream of `sink` for a keyframe with its parameter
/// sets, from its next frame on.
fn force_key_unit(sink: &gst_app::AppSink) {
    if let Some(pad) = sink.static_pad("sink") {
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        pad.push_event(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_preset_is_the_verified_x264_pipeline() {
        let description = pipeline_description(&VideoConfig::default(), InputFormat::Auto, false);
        assert!(description.starts_with("videotestsrc is-live=true"));
        assert!(description.contains("width=1280,height=720,framerate=30/1"));
        assert!(description.contains("x264enc tune=zerolatency"));
        assert!(description.contains("bitrate=2000 key-int-max=60"));
        assert!(description.ends_with("appsink name=sink sync=false max-buffers=8 drop=true"));
        assert_eq!(
            elements_in(&description),
            [
                "videotestsrc",
                "identity",
                "videoconvert",
                "x264enc",
                "h264parse",
                "appsink"
            ]
        );
        assert!(description.contains(&format!("identity name={GLASS_STAMP}")));
    }

    #[test]
    fn the_test_source_stamps_each_frame_with_its_wall_clock_time() {
        gst::init().unwrap();
        let pipeline = parse_pipeline(&format!(
            "videotestsrc num-buffers=1 ! video/x-raw,width=320,height=240,format=I420 \
             ! identity name={GLASS_STAMP} ! appsink name=sink"
        ))
        .unwrap();
        install_glass_stamp(&pipeline.by_name(GLASS_STAMP).unwrap());
        let sink: gst_app::AppSink = element_by_name(&pipeline, "sink").unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(10))
            .unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u32;
        pipeline.set_state(gst::State::Null).unwrap();
        let map = sample.buffer().unwrap().map_readable().unwrap();
        let stamped = glass::read(&map, 320, 320).expect("a stamp in the picture");
        assert!(
            now.wrapping_sub(stamped) < 5000,
            "stamped {stamped}, now {now}"
        );
    }

    #[test]
    fn v4l2_passes_h264_through_and_encodes_the_rest() {
        let config = VideoConfig {
            source: SourceKind::V4l2,
            ..VideoConfig::default()
        };
        let h264 = pipeline_description(&config, InputFormat::H264, false);
        assert_eq!(elements_in(&h264), ["v4l2src", "h264parse", "appsink"]);
        let mjpeg = pipeline_description(&config, InputFormat::Mjpeg, false);
        assert!(elements_in(&mjpeg).contains(&"jpegdec".to_owned()));
        let raw = pipeline_description(&config, InputFormat::Raw, false);
        assert!(elements_in(&raw).contains(&"x264enc".to_owned()));
    }

    #[test]
    fn pi_presets_use_the_hardware_encoder_where_there_is_one() {
        let pi = VideoConfig {
            source: SourceKind::PiHw,
            ..VideoConfig::default()
        };
        let description = pipeline_description(&pi, InputFormat::Auto, true);
        assert!(description.contains("repeat_sequence_header=1,video_bitrate=2000000"));
        let libcamera = VideoConfig {
            source: SourceKind::Libcamera,
            ..VideoConfig::default()
        };
        assert!(pipeline_description(&libcamera, InputFormat::Auto, true).contains("v4l2h264enc"));
        assert!(pipeline_description(&libcamera, InputFormat::Auto, false).contains("x264enc"));
    }

    #[test]
    fn a_missing_element_is_named_with_what_to_do() {
        let config = VideoConfig {
            source: SourceKind::Pipeline,
            pipeline: Some("videotestsrc ! nosuchenc ! appsink name=sink".into()),
            ..VideoConfig::default()
        };
        let error = resolve_pipeline(&config).unwrap_err().to_string();
        assert!(error.contains("`nosuchenc`"), "{error}");
        assert!(error.contains("`gst-inspect-1.0 nosuchenc`"), "{error}");
        assert_eq!(install_hint("x264enc"), "install gstreamer1.0-plugins-ugly");
    }

    #[test]
    fn the_test_source_delivers_keyframes_with_in_band_parameter_sets() {
        let config = VideoConfig {
            width: 320,
            height: 240,
            ..VideoConfig::default()
        };
        let fanout = Fanout::new();
        let viewer = fanout.subscribe(64);
        let _source =
            VideoSource::start(move || resolve_pipeline(&config), fanout.clone()).unwrap();
        let frames: Vec<EncodedFrame> = smol::block_on(async {
            let mut frames = Vec::new();
            while frames.len() < 10 {
                let frame = smol::future::or(viewer.recv(), async {
                    smol::Timer::after(Duration::from_secs(10)).await;
                    None
                })
                .await
                .expect("no frame within 10 s");
                frames.push(frame);
            }
            frames
        });
        assert!(frames[0].keyframe, "a new viewer starts at a keyframe");
        let nal_types: Vec<u8> = frames[0]
            .data
            .windows(4)
            .filter(|w| w[..3] == [0, 0, 1])
            .map(|w| w[3] & 0x1f)
            .collect();
        assert!(
            nal_types.contains(&7) && nal_types.contains(&8),
            "SPS and PPS in-band: {nal_types:?}"
        );
        assert!(frames.windows(2).all(|w| w[0].pts_90khz < w[1].pts_90khz));
        assert!(frames[1..].iter().any(|f| !f.keyframe));
    }

    #[test]
    fn a_late_viewer_gets_a_forced_keyframe_not_the_periodic_one() {
        let config = VideoConfig {
            width: 160,
            height: 120,
            keyframe_interval: 600,
            ..VideoConfig::default()
        };
        let fanout = Fanout::new();
        let early = fanout.subscribe(1024);
        let _source =
            VideoSource::start(move || resolve_pipeline(&config), fanout.clone()).unwrap();
        let recv = |viewer: &crate::media::fanout::Subscription<EncodedFrame>| {
            smol::block_on(smol::future::or(viewer.recv(), async {
                smol::Timer::after(Duration::from_secs(10)).await;
                None
            }))
            .expect("no frame within 10 s")
        };
        for _ in 0..15 {
            recv(&early);
        }
        let late = fanout.subscribe(1024);
        let first = recv(&late);
        assert!(first.keyframe);
        let waited = std::iter::from_fn(|| early.try_recv())
            .take_while(|f| f.pts_90khz < first.pts_90khz)
            .count();
        // Asked for at once, the keyframe is the next frame the encoder
        // starts (one may already be inside it): not the periodic one, and
        // not one frame later, as when the request waited for a frame out.
        assert!(
            waited <= 1,
            "the late viewer waited {waited} frames for its keyframe"
        );
    }

    #[test]
    fn a_pipeline_that_dies_is_restarted() {
        let config = VideoConfig {
            width: 160,
            height: 120,
            ..VideoConfig::default()
        };
        let description = resolve_pipeline(&config)
            .unwrap()
            .replace("is-live=true", "is-live=true num-buffers=10");
        let fanout = Fanout::new();
        let viewer = fanout.subscribe(64);
        let _source = VideoSource::start(move || Ok(description.clone()), fanout.clone()).unwrap();
        let pts: Vec<u64> = smol::block_on(async {
            let mut pts = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while pts.len() < 25 && Instant::now() < deadline {
                let frame = smol::future::or(viewer.recv(), async {
                    smol::Timer::after(Duration::from_secs(5)).await;
                    None
                })
                .await;
                pts.extend(frame.map(|f| f.pts_90khz));
            }
            pts
        });
        assert!(
            pts.len() >= 25,
            "frames kept coming past the first pipeline's end: {}",
            pts.len()
        );
        assert!(
            pts.windows(2).all(|w| w[0] < w[1]),
            "one timeline across restarts: {pts:?}"
        );
    }

    #[test]
    fn a_pipeline_that_cannot_start_is_retried_with_its_reason_shown() {
        let description = "videotestsrc ! video/x-raw,format=I420 ! jpegdec ! appsink name=sink";
        let source = VideoSource::start(|| Ok(description.into()), Fanout::new()).unwrap();
        let state = source.health().wait_for(Duration::from_secs(10), |s| {
            matches!(s, CameraState::Retrying(_))
        });
        let CameraState::Retrying(reason) = state else {
            panic!("still {state:?}");
        };
        assert!(!reason.is_empty());
        assert!(
            source.health().report(Instant::now()).1,
            "the thread is alive"
        );
    }

    #[test]
    fn a_camera_that_stops_sending_is_restarted() {
        // One frame, then a hundred seconds of nothing, with no error and no
        // end of stream: exactly what a stalled camera driver looks like.
        let config = VideoConfig {
            width: 160,
            height: 120,
            ..VideoConfig::default()
        };
        let description = resolve_pipeline(&config)
            .unwrap()
            .replace("framerate=30/1", "framerate=1/100");
        let fanout = Fanout::new();
        let source = VideoSource::start(move || Ok(description.clone()), fanout).unwrap();
        let health = source.health();
        let streaming = health.wait_for(Duration::from_secs(10), |s| *s == CameraState::Streaming);
        assert_eq!(streaming, CameraState::Streaming);
        let limit = FRAME_STALL_LIMIT + Duration::from_secs(10);
        let stalled = health.wait_for(limit, |s| matches!(s, CameraState::Retrying(_)));
        assert!(
            matches!(&stalled, CameraState::Retrying(why) if why.contains("no frame")),
            "{stalled:?}"
        );
    }
}
