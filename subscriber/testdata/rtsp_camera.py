#!/usr/bin/python3
"""A real RTSP H.264 camera for tests: GStreamer's RTSP server serving a
live test picture, x264-encoded with keyframes KEYINT frames apart.

Usage: rtsp_camera.py PORT [KEYINT]   (serves rtsp://127.0.0.1:PORT/cam)
It prints "ready" once it listens, and runs until killed.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port = sys.argv[1]
keyint = sys.argv[2] if len(sys.argv) > 2 else "90"
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=" + keyint + " "
    "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit("cannot listen on port " + port)
print("ready", flush=True)
GLib.MainLoop().run()
