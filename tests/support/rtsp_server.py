#!/usr/bin/python3
"""A real RTSP server for the network-camera tests: GStreamer's own (gst-rtsp-server, from
Debian's gir1.2-gst-rtsp-server-1.0 and python3-gi) streaming H.264 (x264enc, from
gstreamer1.0-plugins-ugly) made from numbered JPEG frames, looped, at a fixed rate and size.

    /usr/bin/python3 tests/support/rtsp_server.py --port P --frames 'DIR/%03d.jpg' \
        --fps 4 --size 1280x720 [--user U --password W]

Prints `ready` on stdout once it listens on 127.0.0.1:P (mount /cam), then serves until
killed. Each client gets its own encoder, from the first frame. Every frame handed to the
encoder is written to --log as `frame-number unix-ms` (the camera side of the latency
measured by `edgeid bench rtsp`).
"""
import argparse
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--frames", required=True, help="numbered JPEGs, printf-style: DIR/%%03d.jpg")
    ap.add_argument("--fps", type=int, default=4)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--log", help="file to write `frame unix-ms` lines to")
    ap.add_argument(
        "--audio", action="store_true",
        help="announce a G.711 audio stream before the video, as cameras with a microphone do",
    )
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)

    audio = (
        "audiotestsrc is-live=true ! audioconvert ! audio/x-raw,rate=8000,channels=1 ! "
        "mulawenc ! rtppcmupay name=pay0 pt=0 "
        if args.audio
        else ""
    )
    video_pay = "pay1" if args.audio else "pay0"
    launch = (
        f'( {audio}multifilesrc location="{args.frames}" loop=true '
        f'caps=image/jpeg,framerate={args.fps}/1 ! jpegdec ! identity sync=true ! videoconvert ! videoscale ! '
        f"video/x-raw,format=I420,width={width},height={height},pixel-aspect-ratio=1/1,colorimetry=bt601 ! "
        f"x264enc name=enc tune=zerolatency speed-preset=ultrafast pass=qual quantizer=20 "
        f"key-int-max={args.fps * 2} ! rtph264pay name={video_pay} pt=96 config-interval=1 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(False)
    log = open(args.log, "a", buffering=1) if args.log else None

    def configured(_factory, media):
        if log is None:
            return
        enc = media.get_element().get_by_name("enc")
        count = [0]

        def probe(_pad, _info):
            log.write(f"{count[0]} {time.time_ns() // 1_000_000}\n")
            count[0] += 1
            return Gst.PadProbeReturn.OK

        enc.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)

    factory.connect("media-configure", configured)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(
            Gst.Structure.new_from_string(
                "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
