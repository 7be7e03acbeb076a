// publish.js: publish the camera into a room. Frames are drawn to a
// canvas, JPEG-encoded by the browser (hi at the chosen size, lo about
// 320 px wide) and sent over a WebSocket; the gateway publishes them.
import { RoomView } from "./room.js";
import { Socket, encodeFrame, roomFromPath, setStatus, nowMs, NAME_RE, NAME_RULE, Rate } from "./wire.js";

const $ = (id) => document.getElementById(id);
const room = roomFromPath();
const params = new URLSearchParams(location.search);
document.title = "publish in " + room + " · vidhub";
$("room-name").textContent = room;
$("room-link").href = "/rooms/" + encodeURIComponent(room);

const randomName = () => "guest-" + Math.random().toString(16).slice(2, 8);
$("name").value = params.get("name") || localStorage.getItem("vidhub-name") || randomName();
for (const k of ["size", "quality", "fps"]) if (params.get(k)) $(k).value = params.get(k);

let session = null;
let view = null;

function notice(text, err) {
  $("notice").textContent = text;
  $("notice").className = "notice" + (err ? " err" : "");
}

const even = (n) => Math.max(2, Math.round(n / 2) * 2);
const toBlob = (c, q) => new Promise((res) => c.toBlob(res, "image/jpeg", q));

class Session {
  constructor(name, stream, { w, h, quality, fps }) {
    Object.assign(this, { name, stream, w, h, quality, fps });
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
    const path = "/ws/publish/" + encodeURIComponent(room) + "/" + encodeURIComponent(name) + "?fps=" + fps;
    this.sock = new Socket(path, {
      onMessage: (d) => {
        if (typeof d !== "string") return;
        const m = JSON.parse(d);
        if (m.type === "hello") {
          this.offset = m.now - Date.now();
          this.maxBytes = m.maxBytes;
          this.fps = Math.min(this.fps, m.maxFps);
        }
      },
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
  async loop() {
    while (!this.stopped) {
      const interval = 1000 / this.fps;
      this.next += interval;
      const wait = this.next - performance.now();
      if (wait < -interval) this.next = performance.now(); // fell behind: no burst
      await new Promise((r) => setTimeout(r, Math.max(0, wait)));
      if (this.stopped) return;
      // Newest frame wins here too: skip while the last one is still on its way.
      if (!this.sock.open || this.sock.ws.bufferedAmount > 0) continue;
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
    // Capture time on the gateway's clock: the room view's probes
    // estimate it best; the publishing socket's hello until they have.
    const t = view && view.clock.best ? nowMs() + view.clock.best.offset : Date.now() + this.offset;
    for (const [c, w, h] of [[this.hi, hw, hh], [this.lo, lw, lh]]) {
      if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
      c.getContext("2d").drawImage(v, 0, 0, w, h);
    }
    const [hb, lb] = await Promise.all([toBlob(this.hi, this.quality), toBlob(this.lo, this.quality)]);
    for (const [layer, b, w, h] of [["hi", hb, hw, hh], ["lo", lb, lw, lh]]) {
      if (!b || b.size > this.maxBytes) continue;
      const jpeg = new Uint8Array(await b.arrayBuffer());
      this.sock.send(encodeFrame(layer, t, w, h, jpeg));
      this.bytes += jpeg.length;
    }
    this.sent++;
    this.rate.add(Date.now());
    this.size = hw + "×" + hh;
  }
  stat() {
    const s = $("self-stat");
    s.classList.remove("hidden");
    s.textContent = (this.size || "") + "  " + this.rate.perSecond(Date.now()) + " fps  " + this.sent + " frames";
    $("meta").textContent = "sent " + (this.bytes / 1e6).toFixed(1) + " MB";
  }
  close() {
    this.stopped = true;
    clearInterval(this.statTimer);
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
  session = new Session(name, stream, { w, h, quality: Number($("quality").value), fps });
  for (const id of ["name", "size", "quality", "fps"]) $(id).disabled = true;
  $("start").classList.add("hidden");
  $("stop").classList.remove("hidden");
  if (view) view.self = name;
}

function stop() {
  if (session) session.close();
  session = null;
  for (const id of ["name", "size", "quality", "fps"]) $(id).disabled = false;
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
if (params.get("autostart") === "1") start();
