#!/usr/bin/env bash
# install-publisher.sh installs vidhub as a camera publisher service on a
# Debian (12, bookworm) machine: OpenCV's runtime libraries, the vidhub
# binary, the vidhub system user, the systemd unit and a configuration
# template; with --leaf, an edge broker beside the publisher too. Running
# it again is safe: it changes only what differs, and it never touches an
# existing /etc/vidhub/publisher.env or broker.env.
#
# usage: deploy/install-publisher.sh [--binary FILE] [--root DIR] [--no-packages] [--leaf URL]
#   --binary FILE   the vidhub binary to install (default: bin/vidhub of this
#                   checkout, built by "make build": the full build, with
#                   OpenCV, which cameras need)
#   --root DIR      install under DIR instead of /, for packaging and tests:
#                   no packages, no user, no systemctl
#   --no-packages   skip apt-get (the OpenCV runtime is already there)
#   --leaf URL      also install and enable vidhub-broker, an edge broker
#                   linked to the hub at URL (nats://HUB:7422 or tls://,
#                   comma-separated for a hub cluster) as a NATS leaf node,
#                   configured in /etc/vidhub/broker.env; the publisher
#                   publishes to it on 127.0.0.1:4222 and only what the hub
#                   watches crosses
#
# Afterwards: edit /etc/vidhub/publisher.env, then
#   systemctl enable --now vidhub-publisher
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
binary="$here/../bin/vidhub"
root=""
packages=yes
leaf=""
leaf_given=no

die() { echo "install-publisher: $*" >&2; exit 1; }
# redact hides the passwords of URLs: nats://edge1:xxxxx@hub:7422.
redact() { printf '%s' "$1" | sed -E 's#(://[^:@/,]*):[^@/,]*@#\1:xxxxx@#g'; }
usage() { sed -n '/^# usage:/,/^#                   watches crosses/s/^# \{0,1\}//p' "$0" >&2; exit 2; }

while (($#)); do
	case "$1" in
	--binary) (($# >= 2)) || usage; binary=$2; shift 2 ;;
	--binary=*) binary=${1#*=}; shift ;;
	--root) (($# >= 2)) || usage; root=$2; shift 2 ;;
	--root=*) root=${1#*=}; shift ;;
	--no-packages) packages=no; shift ;;
	--leaf) (($# >= 2)) || usage; leaf=$2; leaf_given=yes; shift 2 ;;
	--leaf=*) leaf=${1#*=}; leaf_given=yes; shift ;;
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
# Each hub URL: nats:// or tls://, an optional user:password@, a host and
# a port ("vidhub broker" checks them again when it starts).
if [ "$leaf_given" = yes ]; then
	[ -n "$leaf" ] || die "--leaf '': give the hub's leaf URL, e.g. nats://hub.example.com:7422"
	IFS=, read -ra leaf_urls <<<"$leaf"
	for u in "${leaf_urls[@]}"; do
		[[ $u =~ ^(nats|tls)://([^@/[:space:]]+@)?([^@/:[:space:]]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}/?$ ]] ||
			die "--leaf: '$(redact "$u")' is not a hub leaf URL like nats://hub.example.com:7422 (or tls://, with user:password@ for a password user)"
	done
fi

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
local_nats=nats://127.0.0.1:4222
if [ -e "$env_file" ]; then
	echo "install-publisher: keeping $env_file"
	if [ -n "$leaf" ] && ! grep -qx "NATS_URL=$local_nats" "$env_file"; then
		echo "install-publisher: note: $env_file does not say NATS_URL=$local_nats; set it there for the publisher to publish through the edge broker"
	fi
else
	if [ -n "$leaf" ]; then
		# Through the edge broker, encoding only what someone watches.
		sed -e "s|^NATS_URL=.*|NATS_URL=$local_nats|" -e 's|^#VIDHUB_ENCODE=watched$|VIDHUB_ENCODE=watched|' \
			"$here/publisher.env.example" >"$env_file.new"
	else
		cp "$here/publisher.env.example" "$env_file.new"
	fi
	chmod 0640 "$env_file.new"
	mv "$env_file.new" "$env_file"
	echo "install-publisher: wrote $env_file from the template: edit it"
fi

# The edge broker, with --leaf.
broker_changed=no
broker_env="$root/etc/vidhub/broker.env"
if [ -n "$leaf" ]; then
	put "$here/systemd/vidhub-broker.service" "$root/etc/systemd/system/vidhub-broker.service" 0644 && broker_changed=yes
	put "$here/broker.env.example" "$root/etc/vidhub/broker.env.example" 0644 || true
	if [ -e "$broker_env" ]; then
		echo "install-publisher: keeping $broker_env (its VIDHUB_LEAF names the hub: edit it there)"
	else
		# The URL may hold a password: the file is never world-readable.
		escaped=$(printf '%s' "$leaf" | sed -e 's/[\\&|]/\\&/g')
		(umask 077 && sed -e "s|^VIDHUB_LEAF=.*|VIDHUB_LEAF=$escaped|" "$here/broker.env.example" >"$broker_env.new")
		chmod 0640 "$broker_env.new"
		mv "$broker_env.new" "$broker_env"
		echo "install-publisher: wrote $broker_env, linking to the hub at $(redact "$leaf")"
	fi
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
if [ -n "$leaf" ]; then
	chown root:vidhub "$broker_env"
	chmod 0640 "$broker_env"
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	if [ -n "$leaf" ]; then
		if systemctl is-active --quiet vidhub-broker && { [ "$broker_changed" = yes ] || [ "$changed" = yes ]; }; then
			systemctl restart vidhub-broker
			echo "install-publisher: restarted vidhub-broker with the new files"
		fi
		# Enabled, it starts at boot and whenever the publisher does.
		systemctl enable --now vidhub-broker
		echo "install-publisher: vidhub-broker is enabled and running; its link: curl -s http://127.0.0.1:8222/leafz"
	fi
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
