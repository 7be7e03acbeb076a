#!/usr/bin/env bash
# deps.sh installs what vidhub needs on Debian, only what is missing, and
# says what it does. Usage: scripts/deps.sh run|test
#   run   build and run vidhub: OpenCV (for gocv), libjpeg-turbo, FFmpeg's libraries
#         with libx264 (H.264), GStreamer plugins; libx264's static
#         library and glibc's (the lite build that "make image" puts in
#         the container image)
#   test  also what the tests drive: Xvfb and xdotool (the window test),
#         ffmpeg (screen capture), Chromium (browser tests), systemd
#         (systemd-analyze for the unit file), iproute2 (ip and tc for
#         the slow-link test), GStreamer's RTSP server with x264enc and
#         Python bindings (a real RTSP H.264 camera for passthrough tests)
set -euo pipefail

what=${1:-run}
pkgs=(pkg-config gcc libc6-dev libx264-dev libjpeg-dev libopencv-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-libav)
case "$what" in
run) ;;
test) pkgs+=(xvfb xauth xdotool ffmpeg chromium fonts-dejavu-core systemd iproute2 gstreamer1.0-plugins-ugly gstreamer1.0-tools gir1.2-gst-rtsp-server-1.0 python3-gi) ;;
*) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
	echo "deps: installing Debian packages vidhub needs for '$what': ${missing[*]}"
	sudo=""
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || { echo "deps: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
		sudo=sudo
	fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -q
	$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	echo "deps: Debian packages for '$what' already installed"
fi

if ! command -v go >/dev/null; then
	echo "deps: Go is not on PATH; install Go 1.26 (https://go.dev/dl) or add /usr/local/go/bin to PATH" >&2
	exit 1
fi
echo "deps: downloading Go modules (go mod download)"
go mod download
