// publish.js: publish the camera into a room. Each camera frame is drawn
// to two canvases (the chosen size, and about 320 px wide) and sent over a
// WebSocket; the gateway publishes it. Where the browser encodes H.264
// (WebCodecs VideoEncoder) and the gateway takes it, the two sizes go out
// as H.264 (h264 and h264lo), and JPEG (hi, lo) only for the layers
// someone in the room views, as the gateway says; elsewhere every frame
// goes out as JPEG on both layers.
import { RoomView } from "./room.js";
import { Socket, encodeFrame, roomFromPath, setStatus, nowMs, NAME_RE, NAME_RULE, Rate } from "./wire.js";

const $ = (id) => document.getElementById(id);
const room = roomFromPath();
const params = new URLSearchParams(location.search);
document.title = "publish in " + room + " · vidhub";
$("room-name").textContent = room;
$("room-link").href = "/rooms/" + encodeURIComponent(room);

const FIELDS = ["name", "size", "quality", "fps", "codec"];
const randomName = () => "guest-" + Math.random().toString(16).slice(2, 8);
$("name").value = params.get("name") || localStorage.getItem("vidhub-name") || randomName();
for (const k of FIELDS.slice(1)) if (params.get(k)) $(k).value = params.get(k);

let session = null;
let view = null;

function notice(text, err) {
  $("notice").textContent = text;
  $("notice").className = "notice" + (err ? " err" : "");
}

const even = (n) => Math.max(2, Math.round(n / 2) * 2);
const toBlob = (c, q) => new Promise((res) => c.toBlob(res, "image/jpeg", q));

// H.264 settings, as the Go publisher's: a keyframe at least every
// KEY_EVERY_MS, about 0.05 bit per pixel per frame.
const KEY_EVERY_MS = 2000;
const BITS_PER_PIXEL = 0.05;
const MIN_BITRATE = 100000;
// An encoder with more frames than this waiting gets no new one: the
// frame is skipped before it is coded, which breaks no chain.
const QUEUE_MAX = 2;

// AVC_LEVELS: level_idc, most macroblocks per frame, most per second
// (ITU-T H.264 table A-1), from 3.0 up.
const AVC_LEVELS = [
  [0x1e, 1620, 40500],
  [0x1f, 3600, 108000],
  [0x20, 5120, 216000],
  [0x28, 8192, 245760],
  [0x2a, 8704, 522240],
  [0x32, 22080, 589824],
  [0x33, 36864, 983040],
];

// h264Config is the VideoEncoder configuration for w x h at fps:
// Constrained Baseline (avc1.42E0) at the least level that fits, Annex B
// output, realtime.
export function h264Config(w, h, fps) {
  const mbs = Math.ceil(w / 16) * Math.ceil(h / 16);
  const level = (AVC_LEVELS.find(([, fs, mbps]) => mbs <= fs && mbs * fps <= mbps) || AVC_LEVELS[AVC_LEVELS.length - 1])[0];
  return {
    codec: "avc1.42E0" + level.toString(16).toUpperCase().padStart(2, "0"),
    width: w,
    height: h,
    bitrate: Math.max(MIN_BITRATE, Math.round(w * h * fps * BITS_PER_PIXEL)),
    framerate: fps,
    avc: { format: "annexb" },
    latencyMode: "realtime",
  };
}

// canEncodeH264 reports whether this browser encodes H.264 at w x h and
// at the small layer's size.
async function canEncodeH264(w, h, fps) {
  if (typeof VideoEncoder !== "function" || typeof VideoFrame !== "function") return false;
  try {
    for (const [cw, ch] of [[w, h], [320, even((320 * h) / w)]]) {
      const r = await VideoEncoder.isConfigSupported(h264Config(cw, ch, fps));
      if (!r.supported) return false;
    }
    return true;
  } catch (e) {
    return false;
  }
}

// H264Layer encodes one H.264 layer. Latest decodable frame wins: an
// access unit that cannot be sent (the socket is backed up or closed) is
// dropped, and so is every delta after it, until the keyframe it forces.
// Each access unit gets a number, sent or not, so the gateway sees a gap.
class H264Layer {
  constructor(session, layer) {
    Object.assign(this, { s: session, layer });
    this.enc = null;
    this.w = this.h = this.fps = this.bitrate = 0;
    this.codec = "";
    this.seq = 0;
    this.needKey = true; // the next frame must be a keyframe
    this.askedKey = false; // the gateway asked for one
    this.broken = true; // the last access unit was not sent: deltas wait for a keyframe
    this.lastKey = -Infinity;
    this.times = new Map(); // frame timestamp -> capture time on the gateway's clock
    Object.assign(this, { encoded: 0, sent: 0, dropped: 0, skipped: 0, keys: 0, asked: 0, bytes: 0, errors: 0, lastError: "" });
  }
  // configure (re)starts the encoder for w x h at fps, if that changed.
  configure(w, h, fps) {
    if (this.enc && this.enc.state === "configured" && this.w === w && this.h === h && this.fps === fps) return;
    this.close();
    const cfg = h264Config(w, h, fps);
    Object.assign(this, { w, h, fps, codec: cfg.codec, bitrate: cfg.bitrate });
    const enc = new VideoEncoder({
      output: (chunk, md) => this.output(chunk, md),
      error: (e) => {
        this.errors++;
        this.lastError = String(e && e.message ? e.message : e);
        if (this.enc === enc) this.enc = null; // configure starts another
      },
    });
    enc.configure(cfg);
    this.enc = enc;
    this.restart();
    this.s.declare();
  }
  // restart makes the next access unit sent a keyframe: after a new
  // encoder or socket.
  restart() {
    this.needKey = true;
    this.broken = true;
    this.times.clear();
  }
  encode(frame, t) {
    if (!this.enc || this.enc.state !== "configured") return;
    if (this.enc.encodeQueueSize > QUEUE_MAX) {
      this.skipped++;
      return;
    }
    const now = performance.now();
    const key = this.needKey || this.askedKey || now - this.lastKey >= KEY_EVERY_MS;
    this.times.set(frame.timestamp, t);
    if (this.times.size > 64) this.times.delete(this.times.keys().next().value);
    this.enc.encode(frame, { keyFrame: key });
    if (key) {
      this.needKey = this.askedKey = false;
      this.lastKey = now;
    }
  }
  output(chunk, md) {
    this.encoded++;
    const seq = ++this.seq;
    const t = this.times.get(chunk.timestamp);
    this.times.delete(chunk.timestamp);
    const key = chunk.type === "key";
    if (key) this.lastKey = performance.now();
    const codec = md && md.decoderConfig && md.decoderConfig.codec;
    if (codec && codec !== this.codec) {
      this.codec = codec;
      this.s.declare();
    }
    if ((this.broken && !key) || t === undefined || chunk.byteLength > this.s.maxBytes || !this.s.canSend() || performance.now() < this.s.holdUntil) {
      this.dropped++;
      this.broken = this.needKey = true;
      return;
    }
    const body = new Uint8Array(chunk.byteLength);
    chunk.copyTo(body);
    this.s.sock.send(encodeFrame(this.layer, t, this.w, this.h, body, { key, seq }));
    this.broken = false;
    this.sent++;
    this.bytes += body.length;
    this.s.bytes += body.length;
    if (key) this.keys++;
  }
  declared() {
    return { layer: this.layer, width: this.w, height: this.h, codec: this.codec, bitrate: this.bitrate };
  }
  stats() {
    const { layer, codec, w, h, bitrate, encoded, sent, dropped, skipped, keys, asked, bytes, errors, lastError, seq } = this;
    return { layer, codec, size: w + "x" + h, bitrate, encoded, sent, dropped, skipped, keys, asked, bytes, errors, lastError, seq };
  }
  close() {
    if (this.enc && this.enc.state !== "closed") this.enc.close();
    this.enc = null;
  }
}

class Session {
  constructor(name, stream, { w, h, quality, fps, h264 }) {
    Object.assign(this, { name, stream, w, h, quality, fps, canH264: h264 });
    this.video = $("self");
    this.video.srcObject = stream;
    this.hi = document.createElement("canvas");
    this.lo = document.createElement("canvas");
    this.offset = 0;
    this.sent = 0;
    this.bytes = 0;
    this.rate = new Rate();
    this.stopped = false;
    this.maxBytes = Infinity;
    // mode is "h264" once a hello says the gateway takes H.264 and this
    // browser encodes it; want is the JPEG layers the room views then.
    this.mode = "";
    this.ready = false;
    this.want = new Set();
    this.layers = { h264: new H264Layer(this, "h264"), h264lo: new H264Layer(this, "h264lo") };
    this.sizes = null; // [hw, hh, lw, lh] of the last capture
    this.lastDeclared = "";
    this.jpegSent = { hi: 0, lo: 0 };
    this.started = performance.now();
    this.holdUntil = 0; // see hold
    const path = "/ws/publish/" + encodeURIComponent(room) + "/" + encodeURIComponent(name) + "?fps=" + fps;
    this.sock = new Socket(path, {
      onOpen: () => {
        this.ready = false; // until this socket's hello
      },
      onMessage: (d) => this.onMessage(d),
      onStatus: (s, reason) => {
        setStatus($("status"), s === "live" ? "live" : s, reason);
        if (s === "live") $("status").textContent = "on air";
        if (s === "reconnecting") notice("Reconnecting to the gateway…" + (reason ? " (" + reason + ")" : ""));
        if (s === "live") notice("Publishing as " + name + " in " + room + ".");
      },
      onFinal: (code, reason) => {
        notice("The gateway stopped this camera: " + (reason || "code " + code), true);
        stop();
      },
    });
    this.next = performance.now();
    this.loop();
    this.statTimer = setInterval(() => this.stat(), 500);
  }
  onMessage(d) {
    if (typeof d !== "string") return;
    let m;
    try {
      m = JSON.parse(d);
    } catch {
      return;
    }
    if (m.type === "hello") {
      this.offset = m.now - Date.now();
      this.maxBytes = m.maxBytes;
      this.fps = Math.min(this.fps, m.maxFps);
      this.mode = this.canH264 && Array.isArray(m.codecs) && m.codecs.includes("h264") ? "h264" : "jpeg";
      if (this.mode !== "h264") for (const l of Object.values(this.layers)) l.close();
      // A new socket: the gateway starts each layer at a keyframe.
      for (const l of Object.values(this.layers)) l.restart();
      this.lastDeclared = "";
      this.ready = true;
      this.declare();
    } else if (m.type === "key" && this.layers[m.layer]) {
      this.layers[m.layer].askedKey = true;
      this.layers[m.layer].asked++;
    } else if (m.type === "want" && Array.isArray(m.jpeg)) {
      this.want = new Set(m.jpeg.filter((l) => l === "hi" || l === "lo"));
    }
  }
  // declare tells the gateway the layers this page sends, their sizes,
  // and for H.264 the codec strings, before their frames (and again when
  // they change).
  declare() {
    if (!this.ready || !this.sizes) return;
    const [hw, hh, lw, lh] = this.sizes;
    const layers = [
      { layer: "hi", width: hw, height: hh },
      { layer: "lo", width: lw, height: lh },
    ];
    if (this.mode === "h264") for (const l of Object.values(this.layers)) if (l.enc) layers.push(l.declared());
    const msg = JSON.stringify({ type: "layers", layers });
    if (msg === this.lastDeclared) return;
    this.lastDeclared = msg;
    this.sock.send(msg);
  }
  // sendLimit is how many bytes may wait in the socket before a frame
  // is dropped rather than sent: about half a second of H.264.
  sendLimit() {
    if (this.mode !== "h264") return 0;
    return Math.max(65536, (this.layers.h264.bitrate + this.layers.h264lo.bitrate) / 16);
  }
  canSend() {
    return this.sock.open && this.ready && this.sock.ws.bufferedAmount <= this.sendLimit();
  }
  async loop() {
    while (!this.stopped) {
      const interval = 1000 / this.fps;
      this.next += interval;
      const wait = this.next - performance.now();
      if (wait < -interval) this.next = performance.now(); // fell behind: no burst
      await new Promise((r) => setTimeout(r, Math.max(0, wait)));
      if (this.stopped) return;
      // Newest frame wins here too: skip while the socket is backed up.
      if (!this.canSend()) continue;
      try {
        await this.capture();
      } catch (e) {
        // A frame that cannot be encoded is skipped.
      }
    }
  }
  async capture() {
    const v = this.video;
    if (!v.videoWidth) return;
    const scale = Math.min(1, this.w / v.videoWidth, this.h / v.videoHeight);
    const hw = even(v.videoWidth * scale), hh = even(v.videoHeight * scale);
    const lw = Math.min(320, hw) & ~1, lh = even((hh * lw) / hw);
    if (!this.sizes || this.sizes.join() !== [hw, hh, lw, lh].join()) {
      this.sizes = [hw, hh, lw, lh];
      this.declare();
    }
    // Capture time on the gateway's clock: the room view's probes
    // estimate it best; the publishing socket's hello until they have.
    const t = view && view.clock.best ? nowMs() + view.clock.best.offset : Date.now() + this.offset;
    for (const [c, w, h] of [[this.hi, hw, hh], [this.lo, lw, lh]]) {
      if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
      c.getContext("2d").drawImage(v, 0, 0, w, h);
    }
    let jpeg = ["hi", "lo"];
    if (this.mode === "h264") {
      jpeg = jpeg.filter((l) => this.want.has(l));
      // One timestamp per capture, on a clock that only goes forward.
      const ts = Math.round(performance.now() * 1000);
      for (const [l, c, w, h] of [[this.layers.h264, this.hi, hw, hh], [this.layers.h264lo, this.lo, lw, lh]]) {
        l.configure(w, h, this.fps);
        const f = new VideoFrame(c, { timestamp: ts });
        try {
          l.encode(f, t);
        } finally {
          f.close();
        }
      }
    }
    if (jpeg.length) {
      const canvas = { hi: [this.hi, hw, hh], lo: [this.lo, lw, lh] };
      const blobs = await Promise.all(jpeg.map((l) => toBlob(canvas[l][0], this.quality)));
      for (const [i, l] of jpeg.entries()) {
        const b = blobs[i];
        // The loop checked the socket before this capture: both layers go.
        if (!b || b.size > this.maxBytes || !this.sock.open || !this.ready) continue;
        const body = new Uint8Array(await b.arrayBuffer());
        this.sock.send(encodeFrame(l, t, canvas[l][1], canvas[l][2], body));
        this.bytes += body.length;
        this.jpegSent[l]++;
      }
    }
    this.sent++;
    this.rate.add(Date.now());
    this.size = hw + "×" + hh;
  }
  // hold makes every access unit coded in the next ms milliseconds
  // unsendable, as a backed-up socket does: for tests of what follows.
  hold(ms) {
    this.holdUntil = performance.now() + ms;
  }
  // stats is what the page measured, for tests and the label.
  stats() {
    const secs = (performance.now() - this.started) / 1000;
    return {
      mode: this.mode,
      fps: this.rate.perSecond(Date.now()),
      captured: this.sent,
      bytes: this.bytes,
      seconds: secs,
      want: [...this.want],
      jpegSent: { ...this.jpegSent },
      h264: this.layers.h264.stats(),
      h264lo: this.layers.h264lo.stats(),
    };
  }
  stat() {
    const s = $("self-stat");
    s.classList.remove("hidden");
    const codec = this.mode === "h264" ? "H.264 " + this.layers.h264.codec : this.mode ? "JPEG" : "";
    s.textContent = (this.size || "") + "  " + codec + "  " + this.rate.perSecond(Date.now()) + " fps  " + this.sent + " frames";
    $("meta").textContent = "sent " + (this.bytes / 1e6).toFixed(1) + " MB";
  }
  close() {
    this.stopped = true;
    clearInterval(this.statTimer);
    for (const l of Object.values(this.layers)) l.close();
    this.sock.close();
    for (const t of this.stream.getTracks()) t.stop();
    this.video.srcObject = null;
  }
}

async function start() {
  const name = $("name").value.trim();
  if (!NAME_RE.test(name)) {
    notice("A name is " + NAME_RULE + ".", true);
    return;
  }
  localStorage.setItem("vidhub-name", name);
  const [w, h] = $("size").value.split("x").map(Number);
  const fps = Number($("fps").value);
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: w }, height: { ideal: h }, frameRate: { ideal: fps } }, audio: false });
  } catch (e) {
    notice("No camera: " + (e.message || e.name) + ". Allow camera access and try again.", true);
    return;
  }
  const h264 = $("codec").value !== "jpeg" && (await canEncodeH264(w, h, fps));
  session = new Session(name, stream, { w, h, quality: Number($("quality").value), fps, h264 });
  for (const id of FIELDS) $(id).disabled = true;
  $("start").classList.add("hidden");
  $("stop").classList.remove("hidden");
  if (view) view.self = name;
}

function stop() {
  if (session) session.close();
  session = null;
  for (const id of FIELDS) $(id).disabled = false;
  $("start").classList.remove("hidden");
  $("stop").classList.add("hidden");
  $("self-stat").classList.add("hidden");
  setStatus($("status"), "off air");
  $("status").className = "pill";
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  start();
});
$("stop").addEventListener("click", () => {
  stop();
  notice("Stopped. Start again whenever you like.");
});
window.addEventListener("pagehide", () => session && session.close());

const self0 = $("name").value.trim();
view = new RoomView({ room, grid: $("grid"), empty: $("empty"), host: $("host"), self: NAME_RE.test(self0) ? self0 : "", presence: false });
window.vidhubRoom = view;
// window.vidhubPublisher.stats() is what the publishing session measured.
// hold(ms) drops what is coded for ms milliseconds, as on a backed-up
// socket (tests use it).
window.vidhubPublisher = { stats: () => (session ? session.stats() : null), hold: (ms) => session && session.hold(ms) };
if (params.get("autostart") === "1") start();
