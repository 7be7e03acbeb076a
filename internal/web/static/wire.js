// wire.js: the gateway's WebSocket framing, a reconnecting socket, and a
// canvas that shows JPEG frames newest-first.

export const WIRE_VERSION = 2;
export const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const NAME_RULE = "1 to 64 characters of A-Z a-z 0-9 _ -";
const FIXED = 24; // header bytes without the participant name
const FLAG_H264 = 1; // the body is an H.264 access unit (else a JPEG)
const FLAG_KEY = 2; // a keyframe (every JPEG is one)

// parseFrame reads one binary message (docs/browser.md has the layout):
// layer is hi, lo, h264 or h264lo; key is set on keyframes (and JPEG);
// body is the JPEG or the H.264 access unit (Annex B).
export function parseFrame(buf) {
  if (!(buf instanceof ArrayBuffer) || buf.byteLength < FIXED) return null;
  const dv = new DataView(buf);
  if (dv.getUint8(0) !== WIRE_VERSION) return null;
  const small = dv.getUint8(1) === 1;
  const flags = dv.getUint8(2);
  const h264 = (flags & FLAG_H264) !== 0;
  const layer = h264 ? (small ? "h264lo" : "h264") : small ? "lo" : "hi";
  const n = dv.getUint8(3);
  if (buf.byteLength < FIXED + n) return null;
  const name = String.fromCharCode(...new Uint8Array(buf, 4, n));
  const o = 4 + n;
  const timeNs = dv.getBigInt64(o + 8);
  return {
    name,
    layer,
    codec: h264 ? "h264" : "jpeg",
    key: (flags & FLAG_KEY) !== 0,
    seq: Number(dv.getBigUint64(o)),
    time: Number(timeNs / 1000n) / 1000, // Unix ms to the µs, publisher clock
    timeUs: Number(timeNs / 1000n), // Unix µs: a WebCodecs timestamp
    width: dv.getUint16(o + 16),
    height: dv.getUint16(o + 18),
    body: new Uint8Array(buf, o + 20),
  };
}

// encodeFrame builds a message for a publishing socket: no name (the
// URL names the publisher). layer is hi or lo (body a JPEG) or h264 or
// h264lo (body one Annex B access unit; key marks a keyframe). seq is the
// page's own number of the layer's frame, 0 for none: the gateway numbers
// frames itself, and drops an H.264 delta after a gap in the page's.
export function encodeFrame(layer, timeMs, width, height, body, { key = true, seq = 0 } = {}) {
  const h264 = layer === "h264" || layer === "h264lo";
  const out = new Uint8Array(FIXED + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, WIRE_VERSION);
  dv.setUint8(1, layer === "hi" || layer === "h264" ? 0 : 1);
  dv.setUint8(2, h264 ? FLAG_H264 | (key ? FLAG_KEY : 0) : FLAG_KEY);
  dv.setUint8(3, 0);
  dv.setBigUint64(4, BigInt(seq));
  dv.setBigInt64(12, BigInt(Math.round(timeMs * 1000)) * 1000n);
  dv.setUint16(20, width);
  dv.setUint16(22, height);
  out.set(body, FIXED);
  return out;
}

export function wsURL(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

// Close codes after which reconnecting would only be refused again.
const FINAL = new Set([1003, 1008, 1009]);

// Socket is a WebSocket that reconnects with backoff until closed:
// a gateway restart only shows as "reconnecting" for a moment. path is
// the URL's path and query, or a function that returns it afresh for
// every connection.
export class Socket {
  constructor(path, { onOpen, onMessage, onStatus, onFinal } = {}) {
    this.path = path;
    this.onOpen = onOpen || (() => {});
    this.onMessage = onMessage || (() => {});
    this.onStatus = onStatus || (() => {});
    this.onFinal = onFinal || (() => {});
    this.delay = 250;
    this.stopped = false;
    this.ws = null;
    this.timer = 0;
    this.connect();
  }
  connect() {
    if (this.stopped) return;
    this.onStatus(this.ws ? "reconnecting" : "connecting");
    const ws = new WebSocket(wsURL(typeof this.path === "function" ? this.path() : this.path));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 250;
      this.onStatus("live");
      this.onOpen(ws);
    };
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onclose = (ev) => {
      if (this.stopped || ws !== this.ws) return;
      if (FINAL.has(ev.code)) {
        this.stopped = true;
        this.onStatus("closed", ev.reason || "closed by the gateway (" + ev.code + ")");
        this.onFinal(ev.code, ev.reason);
        return;
      }
      this.onStatus("reconnecting", ev.reason);
      this.timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 4000);
    };
  }
  get open() {
    return this.ws && this.ws.readyState === WebSocket.OPEN;
  }
  send(data) {
    if (this.open) this.ws.send(data);
  }
  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }
}

// FrameCanvas decodes JPEG frames onto a canvas. While one decodes, only
// the newest waiting frame is kept: a slow tab skips, never lags.
export class FrameCanvas {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.busy = false;
    this.next = null;
    this.shown = 0;
    this.last = null;
  }
  push(frame) {
    if (this.busy) {
      this.next = frame;
      return;
    }
    this.busy = true;
    this.draw(frame);
  }
  async draw(frame) {
    try {
      const bmp = await createImageBitmap(new Blob([frame.body], { type: "image/jpeg" }));
      if (this.canvas.width !== bmp.width || this.canvas.height !== bmp.height) {
        this.canvas.width = bmp.width;
        this.canvas.height = bmp.height;
      }
      this.ctx.drawImage(bmp, 0, 0);
      bmp.close();
      this.shown++;
      this.last = frame;
      this.onShown && this.onShown(frame);
    } catch (e) {
      // A frame that does not decode is skipped.
    }
    const f = this.next;
    this.next = null;
    if (f) this.draw(f);
    else this.busy = false;
  }
}

// nowMs is this page's clock in Unix milliseconds, finer than Date.now().
export function nowMs() {
  return performance.timeOrigin + performance.now();
}

// Clock estimates how far the gateway's clock is ahead of this page's,
// the way NTP does: each probe (a ping the gateway answers with when it
// got it, t1, and when the answer left, t2) gives
// offset = ((t1 - t0) + (t2 - t3)) / 2 and round trip
// rtt = (t3 - t0) - (t2 - t1), where t0 is when the page sent it and t3
// when the answer came. Whatever delayed a probe is in its round trip,
// so the probe with the least one is trusted, and rtt / 2 bounds its
// error. Samples older than a minute are forgotten (clocks drift).
export class Clock {
  constructor() {
    this.samples = [];
    this.best = null; // {offset, rtt, at}
  }
  reset() {
    this.samples = [];
    this.best = null;
  }
  probe(sock) {
    sock.send(JSON.stringify({ type: "ping", t0: nowMs() }));
  }
  onPong(m, t3) {
    const ok = (x) => typeof x === "number" && Number.isFinite(x);
    if (!ok(m.t0) || !ok(m.t1) || !ok(m.t2)) return;
    const rtt = (t3 - m.t0) - (m.t2 - m.t1);
    if (!(rtt >= 0 && rtt < 30000 && m.t2 >= m.t1)) return;
    this.samples.push({ offset: ((m.t1 - m.t0) + (m.t2 - t3)) / 2, rtt, at: t3 });
    this.samples = this.samples.filter((x) => t3 - x.at < 60000).slice(-32);
    this.best = this.samples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
  }
}

// formatMs shows a duration in milliseconds: a decimal below 10.
export function formatMs(ms) {
  return (ms < 10 ? Math.max(ms, 0.1).toFixed(1) : String(Math.round(ms))) + " ms";
}

// latencyLabel says what a latency measured with a clock offset of error
// err (± ms) shows: the figure, an upper bound when the error is larger
// than the figure, or that the clocks disagree when the figure is
// negative beyond the error. It returns [text, title].
export function latencyLabel(ms, err) {
  if (ms >= err) return [formatMs(ms), "capture to screen, ± " + formatMs(err)];
  if (ms + err >= 0) return ["< " + formatMs(ms + err), "capture to screen: the clock estimate is only good to ± " + formatMs(err)];
  return ["clock?", "the publisher's clock is " + formatMs(-ms) + " ahead of the gateway's: sync their clocks (NTP) to measure latency"];
}

// Rate counts events over the last second.
export class Rate {
  constructor() {
    this.times = [];
  }
  add(t) {
    this.times.push(t);
    if (this.times.length > 512) this.times.shift();
  }
  perSecond(now) {
    while (this.times.length && now - this.times[0] > 1000) this.times.shift();
    return this.times.length;
  }
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

export function setStatus(pill, status, reason) {
  const text = { live: "live", replay: "replay", connecting: "connecting", reconnecting: "reconnecting…", closed: "closed" }[status] || status;
  pill.textContent = text;
  pill.className = "pill " + (status === "live" ? "live" : status === "replay" ? "replay" : status === "closed" ? "down" : "wait");
  pill.title = reason || "";
}

// roomFromPath returns the room of /rooms/<room>[/...].
export function roomFromPath() {
  const m = location.pathname.match(/^\/rooms\/([^/]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}
