#!/usr/bin/env python3
"""A peercam-protocol device built on aiortc, for bench/compare.mjs.

It speaks docs/protocol.md in plain mode, enough for the bundled web
viewer: a retained `P/D/status` with a last will, `ice-servers`, `offer` →
`answer` (aiortc gathers before it answers, so the candidates are inside
the SDP, followed by end-of-candidates), trickled viewer candidates, `bye`,
and `viewers` kept up to date. Video only: the viewer's audio m-line is
answered `inactive`.

Video: one shared source for every viewer. GStreamer's `videotestsrc
pattern=smpte` (peercam's `test` preset) into an appsink; without PyGObject
a pure-Python moving bar. Each raw frame gets the glass stamp (see
`stamp`), then goes to aiortc's `MediaRelay`, which hands the same frame to
every viewer's track. aiortc encodes inside each `RTCRtpSender`, so every
viewer has its own libx264 encoder (PyAV); by default it is set up like
peercam's x264enc (ultrafast, zerolatency, constrained baseline, keyframe
every 2 s, 2000 kb/s with a 600 ms VBV, REMB ignored); `--x264-preset
stock` leaves aiortc's encoder exactly as shipped.

    aiortc_device.py --broker mqtt://127.0.0.1:1883 --prefix P --device D \
        --width 1280 --height 720 --fps 30 --bitrate-kbps 2000 --max-viewers 20

It prints one line `source: ...` then `ready` once the status is out.
SIGTERM/SIGINT: `bye` to every call, offline status, exit.
"""

import argparse
import asyncio
import fractions
import ipaddress
import json
import logging
import re
import signal
import sys
import threading
import time
from urllib.parse import urlparse

import aioice.ice
import av
import paho.mqtt.client as mqtt
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack
from aiortc.codecs import h264
from aiortc.contrib.media import MediaRelay
from aiortc.sdp import candidate_from_sdp

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAX_PAYLOAD = 65536
VIDEO_CLOCK = 90000
log = logging.getLogger("aiortc-device")


# ---- the glass stamp ----

def stamp(y, u, v, width, y_stride, c_stride, now_ms=None):
    """Writes the glass stamp into writable I420 planes (bytearray/memoryview).

    34 square blocks of side b = max(4, width // 40) in one row from (0, 0)
    of the luma plane: white (235), black (16), then the 32 bits of the
    wall-clock ms since the epoch mod 2^32, MSB first (1 white, 0 black);
    U and V under the blocks are 128.
    """
    b = max(4, width // 40)
    ms = (time.time_ns() // 1_000_000 if now_ms is None else now_ms) & 0xFFFFFFFF
    bits = [1, 0] + [(ms >> (31 - i)) & 1 for i in range(32)]
    row = bytearray()
    for bit in bits:
        row += (b"\xeb" if bit else b"\x10") * b
    row = bytes(row[: min(len(row), width)])
    for r in range(b):
        y[r * y_stride: r * y_stride + len(row)] = row
    grey = b"\x80" * ((len(row) + 1) // 2)
    for r in range((b + 1) // 2):
        u[r * c_stride: r * c_stride + len(grey)] = grey
        v[r * c_stride: r * c_stride + len(grey)] = grey
    return ms


# ---- the shared source ----

class SharedSource(VideoStreamTrack):
    """The one camera: the latest stamped frame, for MediaRelay to fan out."""

    def __init__(self, loop, width, height, fps):
        super().__init__()
        self.loop = loop
        self.width, self.height, self.fps = width, height, fps
        self.frame = None
        self.fresh = asyncio.Event()
        self.frames = 0
        self.description = None
        self.stop_source = None

    def publish(self, frame):
        """From any thread: the next frame."""
        self.loop.call_soon_threadsafe(self._set, frame)

    def _set(self, frame):
        self.frame = frame
        self.frames += 1
        self.fresh.set()

    async def recv(self):
        await self.fresh.wait()
        self.fresh.clear()
        return self.frame

    def make_frame(self, data, pts):
        """An av.VideoFrame from I420 `data` (bytearray), stamped."""
        w, h = self.width, self.height
        cw, ch = (w + 1) // 2, (h + 1) // 2
        y = memoryview(data)[: w * h]
        u = memoryview(data)[w * h: w * h + cw * ch]
        v = memoryview(data)[w * h + cw * ch: w * h + 2 * cw * ch]
        stamp(y, u, v, w, w, cw)
        frame = av.VideoFrame(w, h, "yuv420p")
        for plane, src, pw, ph in ((frame.planes[0], y, w, h), (frame.planes[1], u, cw, ch), (frame.planes[2], v, cw, ch)):
            if plane.line_size == pw:
                plane.update(src)
            else:
                dst = memoryview(plane).cast("B")
                for r in range(ph):
                    dst[r * plane.line_size: r * plane.line_size + pw] = src[r * pw: (r + 1) * pw]
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame

    def start_gstreamer(self):
        import gi
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst

        Gst.init(None)
        launch = (
            f"videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width={self.width},"
            f"height={self.height},framerate={self.fps}/1 ! appsink name=sink emit-signals=true "
            "max-buffers=1 drop=true sync=false"
        )
        pipeline = Gst.parse_launch(launch)
        sink = pipeline.get_by_name("sink")

        def on_sample(appsink):
            sample = appsink.emit("pull-sample")
            buffer = sample.get_buffer()
            ok, info = buffer.map(Gst.MapFlags.READ)
            if not ok:
                return Gst.FlowReturn.OK
            try:
                data = bytearray(info.data)
            finally:
                buffer.unmap(info)
            pts = buffer.pts * VIDEO_CLOCK // Gst.SECOND if buffer.pts != Gst.CLOCK_TIME_NONE else None
            self.publish(self.make_frame(data, pts))
            return Gst.FlowReturn.OK

        sink.connect("new-sample", on_sample)
        pipeline.set_state(Gst.State.PLAYING)
        self.stop_source = lambda: pipeline.set_state(Gst.State.NULL)
        self.description = f"GStreamer videotestsrc pattern=smpte {self.width}x{self.height}@{self.fps} I420 via appsink (peercam's test source)"

    def start_synthetic(self):
        stop = threading.Event()
        w, h = self.width, self.height
        cw, ch = (w + 1) // 2, (h + 1) // 2
        bar = max(8, w // 16)

        def run():
            start = time.monotonic()
            n = 0
            while not stop.is_set():
                due = start + n / self.fps
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                x = (n * 8) % w
                line = bytearray(b"\x40" * w)
                line[x: x + bar] = b"\xd0" * len(line[x: x + bar])
                data = bytearray(bytes(line) * h) + bytearray(b"\x80" * (2 * cw * ch))
                self.publish(self.make_frame(data, n * VIDEO_CLOCK // self.fps))
                n += 1

        threading.Thread(target=run, daemon=True).start()
        self.stop_source = stop.set
        self.description = f"pure-Python moving bar {w}x{h}@{self.fps} (no PyGObject)"

    def start(self):
        try:
            self.start_gstreamer()
        except (ImportError, ValueError) as e:
            log.warning("no GStreamer source (%s); using the synthetic one", e)
            self.start_synthetic()


# ---- the encoder: aiortc's own, set up like peercam's x264enc ----

def configure_encoder(bitrate_kbps, fps, keyint, preset):
    """Makes aiortc's H264Encoder encode at a fixed `bitrate_kbps`.

    aiortc clamps its bitrate to [MIN, MAX] and follows REMB; pinning all
    three keeps it at peercam's fixed rate. With `preset` other than
    "stock", the libx264 context also gets peercam's x264enc settings.
    """
    bps = bitrate_kbps * 1000
    h264.DEFAULT_BITRATE = h264.MIN_BITRATE = h264.MAX_BITRATE = bps
    if preset == "stock":
        return f"aiortc H264Encoder as shipped (libx264 medium, zerolatency, Baseline, level 3.1), {bitrate_kbps} kb/s pinned"
    create = av.CodecContext.create

    class Codecs:
        """`av` as h264.py sees it: libx264 contexts get peercam's settings."""

        def __getattr__(self, name):
            return getattr(av, name)

        class CodecContext:
            @staticmethod
            def create(name, mode):
                return TunedContext(create(name, mode))

    class TunedContext:
        """A libx264 context whose `options` always carry the preset, keyint and VBV."""

        def __init__(self, inner):
            object.__setattr__(self, "inner", inner)

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __setattr__(self, name, value):
            if name == "options":
                value = {
                    **value,
                    "preset": preset,
                    "tune": "zerolatency",
                    "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:vbv-maxrate={bitrate_kbps}:vbv-bufsize={bitrate_kbps * 6 // 10}",
                }
            setattr(self.inner, name, value)

        def encode(self, frame=None):
            packets = self.inner.encode(frame)
            if not getattr(self, "_logged", False) and packets:
                object.__setattr__(self, "_logged", True)
                found = re.search(rb"x264 - core[^\x00]*", bytes(packets[0]))
                log.info("libx264: %s", found.group(0).decode("latin-1") if found else "(no x264 SEI in the first packet)")
            return packets

    h264.av = Codecs()
    return (
        f"aiortc H264Encoder (PyAV libx264) {preset}/zerolatency, Baseline level 3.1, keyint {keyint}, "
        f"{bitrate_kbps} kb/s pinned (VBV 600 ms, REMB ignored), one encoder per viewer"
    )


# ---- signaling ----

def body(type_, **fields):
    return json.dumps({"v": 1, "type": type_, **fields}, separators=(",", ":"))


class Session:
    def __init__(self, sid):
        self.sid = sid
        self.pc = None
        self.track = None
        self.early = []
        self.last_payload = None
        self.connected = False
        self.closed = False
        self.queue = asyncio.Queue()
        self.task = None
        self.created = time.monotonic()


class Device:
    def __init__(self, args, loop):
        self.args = args
        self.loop = loop
        url = urlparse(args.broker)
        if url.scheme not in ("mqtt", "tcp", ""):
            raise SystemExit(f"only mqtt:// brokers: {args.broker}")
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 1883
        self.base = f"{args.prefix}/{args.device}"
        self.sessions = {}
        self.ended = []
        self.source = SharedSource(loop, args.width, args.height, args.fps)
        self.relay = MediaRelay()
        self.viewers = -1
        self.online = asyncio.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"aiortc-{args.device}", clean_session=True)
        self.client.will_set(f"{self.base}/status", json.dumps({"v": 1, "online": False}, separators=(",", ":")), qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self.on_connect
        self.client.on_message = self.on_message

    # MQTT thread → event loop
    def on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            log.warning("broker refused: %s", reason)
            return
        client.subscribe(f"{self.base}/in/+", qos=1)
        self.loop.call_soon_threadsafe(self.publish_status, True)

    def on_message(self, client, userdata, message):
        self.loop.call_soon_threadsafe(self.receive, message.topic, bytes(message.payload), message.retain)

    def publish(self, topic, payload, retain=False):
        if len(payload) > MAX_PAYLOAD:
            log.warning("dropped an oversized publish on %s", topic)
            return
        self.client.publish(topic, payload, qos=1, retain=retain)

    def send(self, sid, payload):
        self.publish(f"{self.base}/out/{sid}", payload)

    def publish_status(self, force=False):
        viewers = sum(1 for s in self.sessions.values() if s.connected and not s.closed)
        if viewers == self.viewers and not force:
            return
        self.viewers = viewers
        self.publish(f"{self.base}/status", json.dumps({
            "v": 1, "online": True, "name": "aiortc", "sealed": False, "video": ["H264"], "audio": None,
            "viewers": viewers, "max_viewers": self.args.max_viewers, "ice_servers": [],
        }, separators=(",", ":")), retain=True)
        self.online.set()

    def receive(self, topic, payload, retain):
        prefix = f"{self.base}/in/"
        if retain or not topic.startswith(prefix) or len(payload) > MAX_PAYLOAD:
            return
        sid = topic[len(prefix):]
        if not SESSION_ID.match(sid) or sid in self.ended:
            return
        try:
            text = payload.decode("utf-8")
            message = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            return
        if not isinstance(message, dict) or "v" not in message or type(message["v"]) not in (int, float) or isinstance(message["v"], bool):
            return
        session = self.sessions.get(sid)
        if message["v"] != 1 or type(message["v"]) is not int:
            self.send(sid, body("error", code="unsupported", message="This device speaks protocol version 1.", re=str(message.get("type", ""))))
            return
        kind = message.get("type")
        if kind in ("offer", "candidate"):
            if session is not None and session.last_payload == text:
                return
        if session is None:
            if kind == "bye":
                return
            pending = [s for s in self.sessions.values() if s.pc is None]
            if len(pending) >= 64:
                self.forget(min(pending, key=lambda s: s.created))
            session = self.sessions[sid] = Session(sid)
            session.task = asyncio.ensure_future(self.run_session(session))
        if kind in ("offer", "candidate"):
            session.last_payload = text
        session.queue.put_nowait(message)

    async def run_session(self, session):
        """Acts on one session's messages in order."""
        try:
            while not session.closed:
                message = await session.queue.get()
                await self.apply(session, message)
        except Exception as e:  # noqa: BLE001 - a bench device logs and goes on
            log.exception("session %s: %s", session.sid, e)
            await self.end(session, f"internal WebRTC error: {e}")

    async def apply(self, session, message):
        kind = message.get("type")
        sid = session.sid
        if kind == "ice-servers":
            self.send(sid, body("ice-servers", ice_servers=[]))
        elif kind == "offer":
            sdp = message.get("sdp")
            if not isinstance(sdp, str) or not sdp:
                self.send(sid, body("error", code="bad-request", message="An offer needs a non-empty sdp.", re="offer"))
                return
            await self.on_offer(session, sdp)
        elif kind == "candidate":
            await self.on_candidate(session, message)
        elif kind == "bye":
            await self.end(session, None)
        elif kind == "talk":
            self.send(sid, body("error", code="unsupported", message="This camera has no talk-back.", re="talk"))
        else:
            self.send(sid, body("error", code="unsupported", message=f"Unknown message type {kind!r}.", re=str(kind or "")))

    async def on_offer(self, session, sdp):
        first = session.pc is None
        if first:
            live = sum(1 for s in self.sessions.values() if s.pc is not None and not s.closed)
            if live >= self.args.max_viewers + 4:
                self.send(session.sid, body("error", code="busy", message="The camera serves as many viewers as it allows.", re="offer"))
                self.forget(session)
                return
            session.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

            @pc.on("connectionstatechange")
            async def on_state():
                await self.on_connection_state(session)
        pc = session.pc
        try:
            if first:
                # The sending transceiver exists before the offer is applied,
                # so that the offer's first video m-line takes it with its
                # codec preferences (H.264 and its RTX only: aiortc would
                # otherwise answer with the viewer's first codec, VP8).
                session.track = self.relay.subscribe(self.source, buffered=False)
                video = pc.addTransceiver(session.track, direction="sendonly")
                video.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                           if c.mimeType.lower() in ("video/h264", "video/rtx")])
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if first:
                if video.mid is None:
                    raise ValueError("no video m-line")
                for t in pc.getTransceivers():
                    if t is not video:
                        t.direction = "inactive"
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as e:  # noqa: BLE001
            log.warning("offer on %s refused: %s", session.sid, e)
            code = "unsupported" if "codec" in str(e).lower() or "video" in str(e).lower() else "bad-request"
            self.send(session.sid, body("error", code=code, message=f"The offer could not be answered: {e}", re="offer"))
            if first:
                await self.end(session, None)
            return
        self.send(session.sid, body("answer", sdp=pc.localDescription.sdp))
        mid = pc.getTransceivers()[0].mid
        self.send(session.sid, body("candidate", candidate="", sdpMid=mid, sdpMLineIndex=0))
        for message in session.early:
            await self.on_candidate(session, message)
        session.early = []

    async def on_candidate(self, session, message):
        line = message.get("candidate")
        if not isinstance(line, str) or (line and not line.startswith("candidate:")):
            self.send(session.sid, body("error", code="bad-request", message="A candidate is a `candidate:` line or empty.", re="candidate"))
            return
        if session.pc is None or session.pc.remoteDescription is None:
            if len(session.early) < 32:
                session.early.append(message)
            return
        if not line:
            await session.pc.addIceCandidate(None)
            return
        try:
            candidate = candidate_from_sdp(line[len("candidate:"):])
        except (ValueError, IndexError):
            self.send(session.sid, body("error", code="bad-request", message="Unreadable candidate.", re="candidate"))
            return
        if candidate.ip.endswith(".local") or not self.reachable(candidate.ip):
            return
        candidate.sdpMid = session.pc.getTransceivers()[0].mid
        candidate.sdpMLineIndex = 0
        await session.pc.addIceCandidate(candidate)

    def reachable(self, address):
        """With a loopback host address, only loopback remote candidates are tried (peercam's interfaces = ["lo"])."""
        try:
            if not ipaddress.ip_address(self.args.host_address).is_loopback:
                return True
        except ValueError:
            return True
        try:
            return ipaddress.ip_address(address).is_loopback
        except ValueError:
            return False

    async def on_connection_state(self, session):
        state = session.pc.connectionState if session.pc else "closed"
        if session.closed:
            return
        if state == "connected" and not session.connected:
            connected = sum(1 for s in self.sessions.values() if s.connected and not s.closed)
            if connected >= self.args.max_viewers:
                await self.end(session, "the camera is full: it already serves as many viewers as it allows")
                return
            session.connected = True
            self.publish_status()
        elif state == "failed":
            await self.end(session, "the viewer stopped responding")
        elif state == "closed":
            await self.end(session, "the viewer closed the connection")

    async def end(self, session, reason):
        """Ends a session; `reason` set: the device ends it and says so with `bye`."""
        if session.closed:
            return
        session.closed = True
        if reason is not None:
            self.send(session.sid, body("bye", reason=reason))
        self.forget(session)
        self.publish_status()

    def forget(self, session):
        session.closed = True
        self.sessions.pop(session.sid, None)
        self.ended.append(session.sid)
        del self.ended[:-256]
        if session.task is not None and session.task is not asyncio.current_task():
            session.task.cancel()
        if session.track is not None:
            session.track.stop()
        if session.pc is not None:
            asyncio.ensure_future(session.pc.close())

    async def run(self, stop):
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        try:
            await asyncio.wait_for(self.online.wait(), 20)
        except asyncio.TimeoutError:
            raise SystemExit(f"no broker at {self.args.broker} after 20 s")
        print("ready", flush=True)
        await stop.wait()
        for session in list(self.sessions.values()):
            await self.end(session, "the camera is shutting down")
        info = self.client.publish(f"{self.base}/status", json.dumps({"v": 1, "online": False}, separators=(",", ":")), qos=1, retain=True)
        try:
            info.wait_for_publish(2)
        except (RuntimeError, ValueError):
            pass
        self.client.disconnect()
        self.client.loop_stop()
        if self.source.stop_source:
            self.source.stop_source()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--bitrate-kbps", type=int, default=2000)
    parser.add_argument("--max-viewers", type=int, default=20)
    parser.add_argument("--keyint", type=int, default=60, help="frames between keyframes (peercam: 60)")
    parser.add_argument("--x264-preset", default="ultrafast", help='libx264 preset, or "stock" for aiortc as shipped')
    parser.add_argument("--host-address", default="127.0.0.1", help='the only ICE host address; "all" for aioice\'s own choice')
    parser.add_argument("--log", default="warning")
    args = parser.parse_args()
    logging.basicConfig(level=args.log.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.host_address != "all":
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [args.host_address]

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    encoder = configure_encoder(args.bitrate_kbps, args.fps, args.keyint, args.x264_preset)
    device = Device(args, loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    device.source.start()
    print(f"source: {device.source.description}; encoder: {encoder}; aiortc {__import__('aiortc').__version__}, PyAV {av.__version__}", flush=True)
    try:
        loop.run_until_complete(device.run(stop))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
