#!/usr/bin/env bash
# install-publisher.sh installs vidhub as a camera publisher service on a
# Debian (12, bookworm) machine: OpenCV's runtime libraries, the vidhub
# binary, the vidhub system user, the systemd unit and a configuration
# template. Running it again is safe: it changes only what differs, and it
# never touches an existing /etc/vidhub/publisher.env.
#
# usage: deploy/install-publisher.sh [--binary FILE] [--root DIR] [--no-packages]
#   --binary FILE   the vidhub binary to install (default: bin/vidhub of this
#                   checkout, built by "make build": the full build, with
#                   OpenCV, which cameras need)
#   --root DIR      install under DIR instead of /, for packaging and tests:
#                   no packages, no user, no systemctl
#   --no-packages   skip apt-get (the OpenCV runtime is already there)
#
# Afterwards: edit /etc/vidhub/publisher.env, then
#   systemctl enable --now vidhub-publisher
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
binary="$here/../bin/vidhub"
root=""
packages=yes

die() { echo "install-publisher: $*" >&2; exit 1; }
usage() { sed -n '/^# usage:/,/^#   --no-packages/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

while (($#)); do
	case "$1" in
	--binary) (($# >= 2)) || usage; binary=$2; shift 2 ;;
	--binary=*) binary=${1#*=}; shift ;;
	--root) (($# >= 2)) || usage; root=$2; shift 2 ;;
	--root=*) root=${1#*=}; shift ;;
	--no-packages) packages=no; shift ;;
	-h | --help) usage ;;
	*) echo "install-publisher: unknown argument '$1'" >&2; usage ;;
	esac
done

if [ -n "$root" ]; then
	[ -d "$root" ] || die "--root $root: no such directory; create it first"
	root=$(cd "$root" && pwd)
	packages=no
elif [ "$(id -u)" != 0 ]; then
	die "run as root (sudo $0 $*), or use --root DIR to install into a directory"
fi
[ -f "$binary" ] || die "no vidhub binary at $binary: run \"make build\" on a Debian 12 machine with OpenCV (make deps), or pass --binary FILE"
[ -x "$binary" ] || die "$binary is not executable: chmod +x it, or pass the right --binary"

# The OpenCV 4.6 libraries gocv links, libjpeg-turbo with them, and the
# GStreamer plugins for V4L2 cameras and streams.
runtime_pkgs=(
	libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 libopencv-videoio406
	libopencv-highgui406 libopencv-video406 libopencv-objdetect406 libopencv-calib3d406
	libopencv-features2d406 libopencv-dnn406 libopencv-photo406 libopencv-flann406
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good v4l-utils
)

if [ "$packages" = yes ]; then
	missing=()
	for p in "${runtime_pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		echo "install-publisher: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q
		apt-get install -y -q --no-install-recommends "${missing[@]}"
	else
		echo "install-publisher: OpenCV runtime already installed"
	fi
fi

# put SRC DEST MODE copies SRC to DEST when they differ, with MODE.
put() {
	local src=$1 dest=$2 mode=$3
	mkdir -p "$(dirname "$dest")"
	if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
		chmod "$mode" "$dest"
		echo "install-publisher: $dest is up to date"
		return 1
	fi
	# Copy then rename: a running vidhub keeps its old file.
	cp "$src" "$dest.new"
	chmod "$mode" "$dest.new"
	mv -f "$dest.new" "$dest"
	echo "install-publisher: installed $dest"
}

changed=no
put "$binary" "$root/usr/local/bin/vidhub" 0755 && changed=yes
put "$here/systemd/vidhub-publisher.service" "$root/etc/systemd/system/vidhub-publisher.service" 0644 && changed=yes
put "$here/systemd/vidhub.sysusers" "$root/etc/sysusers.d/vidhub.conf" 0644 || true
mkdir -p "$root/etc/vidhub"
put "$here/publisher.env.example" "$root/etc/vidhub/publisher.env.example" 0644 || true
env_file="$root/etc/vidhub/publisher.env"
if [ -e "$env_file" ]; then
	echo "install-publisher: keeping $env_file"
else
	cp "$here/publisher.env.example" "$env_file.new"
	chmod 0640 "$env_file.new"
	mv "$env_file.new" "$env_file"
	echo "install-publisher: wrote $env_file from the template: edit it"
fi

if [ -n "$root" ]; then
	echo "install-publisher: installed under $root (no packages, user or systemctl with --root)"
	exit 0
fi

# The vidhub user, in the video group; it may read (not write) the env
# file, which can hold a broker password.
systemd-sysusers /etc/sysusers.d/vidhub.conf
chown root:vidhub "$env_file"
chmod 0640 "$env_file"

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	if systemctl is-active --quiet vidhub-publisher && [ "$changed" = yes ]; then
		systemctl restart vidhub-publisher
		echo "install-publisher: restarted vidhub-publisher with the new files"
	fi
	if ! systemctl is-enabled --quiet vidhub-publisher; then
		echo
		echo "Next: edit $env_file (room, name, source, broker), then"
		echo "  systemctl enable --now vidhub-publisher"
		echo "  journalctl -u vidhub-publisher -f"
	fi
else
	echo "install-publisher: systemd is not running here; the unit is in place for when it is"
fi
