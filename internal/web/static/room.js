// room.js: a live room grid. One WebSocket brings every publisher's
// frames: small ones for the grid, full size for the focused (or only)
// tile. A publisher that sends H.264 comes in H.264 where this browser
// decodes it (WebCodecs), in JPEG otherwise.
import { Socket, FrameCanvas, Rate, Clock, el, parseFrame, nowMs, latencyLabel } from "./wire.js";

const STALL_MS = 2500;
// KEY_ASK_MS paces a tile's keyframe requests: the publisher serves one
// per 300 ms at most anyway.
const KEY_ASK_MS = 300;
// MAX_DECODE_QUEUE is how many access units may wait in a decoder before
// the tile counts itself behind and skips to the next keyframe.
const MAX_DECODE_QUEUE = 8;
// MAX_REPLAY_QUEUE is the same while replaying a recording: the gateway
// hands on the run from the keyframe before the moment asked for at
// once (up to a GOP, 2 s by default), and the decoder must work through
// it rather than skip it.
const MAX_REPLAY_QUEUE = 90;

// H264Decoder decodes one tile's H.264 access units with WebCodecs and
// hands the pictures to the tile (Tile.present): latest decodable frame
// wins. It never feeds the decoder a delta across a gap (a missing seq,
// a layer change, a decoder error or a decoder that fell behind): it
// drops up to the next keyframe and asks for one. Apart from that
// gating it keeps its own account of the reference chain of what it fed
// the decoder, so that a picture decoded from a broken chain is counted
// (corruptShown), not hidden.
class H264Decoder {
  constructor(tile, askKey) {
    this.tile = tile;
    this.askKey = askKey;
    this.dec = null;
    this.codec = "";
    this.layer = "";
    this.lastSeq = 0;
    this.waitKey = true;
    this.lastAsk = -Infinity;
    this.meta = new Map(); // chunk timestamp -> what the output needs
    // The chain account: what was fed, kept apart from the gating.
    this.fedLayer = "";
    this.fedSeq = 0;
    this.chainOK = false;
    this.stats = { decoded: 0, keyframes: 0, decodeErrors: 0, corruptShown: 0, gaps: 0, waited: 0, keyRequests: 0, behind: 0 };
  }
  // push feeds one access unit (a parsed frame); codec is the codec
  // string of its layer from the publisher's presence.
  push(f, codec, arrived) {
    if (f.layer !== this.layer) {
      this.layer = f.layer;
      this.waitKey = true;
    } else if (f.seq !== this.lastSeq + 1) {
      this.stats.gaps++;
      this.waitKey = true;
    }
    this.lastSeq = f.seq;
    const limit = this.tile.view.replayFrom != null ? MAX_REPLAY_QUEUE : MAX_DECODE_QUEUE;
    if (this.dec && this.dec.decodeQueueSize > limit && !f.key) {
      this.stats.behind++;
      this.waitKey = true;
    }
    if (this.waitKey && !f.key) {
      this.stats.waited++;
      this.ask(f.layer);
      return;
    }
    // A new codec string (the publisher changed size, and with it the
    // level) reopens the decoder at a keyframe only: a fresh decoder
    // needs one, and until then the open one goes on with the parameter
    // sets in the stream. Presence announces the new string up to a beat
    // after the frames bring it.
    if (!this.dec || this.dec.state === "closed" || (this.codec !== codec && f.key)) {
      if (!this.open(codec)) return;
    }
    this.waitKey = false;
    if (f.key) this.chainOK = true;
    else this.chainOK = this.chainOK && f.layer === this.fedLayer && f.seq === this.fedSeq + 1;
    this.fedLayer = f.layer;
    this.fedSeq = f.seq;
    this.meta.set(f.timeUs, { ok: this.chainOK, key: f.key, time: f.time, arrived, layer: f.layer });
    if (this.meta.size > 64) this.meta.delete(this.meta.keys().next().value);
    try {
      this.dec.decode(new EncodedVideoChunk({ type: f.key ? "key" : "delta", timestamp: f.timeUs, data: f.body }));
    } catch (e) {
      this.failed(e);
    }
  }
  open(codec) {
    this.close();
    try {
      this.dec = new VideoDecoder({ output: (fr) => this.output(fr), error: (e) => this.failed(e) });
      this.dec.configure({ codec, optimizeForLatency: true });
      this.codec = codec;
      this.chainOK = false;
      return true;
    } catch (e) {
      this.failed(e);
      return false;
    }
  }
  output(fr) {
    const m = this.meta.get(fr.timestamp);
    this.meta.delete(fr.timestamp);
    const w = fr.displayWidth, h = fr.displayHeight;
    this.tile.present(fr);
    this.stats.decoded++;
    if (!m) {
      this.stats.corruptShown++; // a picture nobody fed: count it against us
      return;
    }
    if (m.key) this.stats.keyframes++;
    if (!m.ok) this.stats.corruptShown++;
    this.tile.shown({ layer: m.layer, width: w, height: h, time: m.time }, nowMs(), this.codec);
  }
  failed(e) {
    this.stats.decodeErrors++;
    this.tile.lastError = String(e && e.message ? e.message : e);
    this.waitKey = true;
    this.chainOK = false;
    this.meta.clear();
    this.close();
    this.ask(this.layer);
  }
  ask(layer) {
    const now = performance.now();
    if (!layer || now - this.lastAsk < KEY_ASK_MS) return;
    this.lastAsk = now;
    this.stats.keyRequests++;
    this.askKey(layer);
  }
  close() {
    if (this.dec && this.dec.state !== "closed") {
      try {
        this.dec.close();
      } catch {
        // closed already
      }
    }
    this.dec = null;
  }
}
// Clock probes: a few on connect, then one every PROBE_EVERY_MS.
const PROBES = 5;
const PROBE_GAP_MS = 150;
const PROBE_EVERY_MS = 10000;

class Tile {
  constructor(view, name) {
    this.name = name;
    this.view = view;
    this.canvas = el("canvas");
    this.fc = new FrameCanvas(this.canvas);
    // H.264 pictures go to a <video> element through a track of their
    // own where the browser can (see present), made at the first one.
    this.video = null;
    this.noVideo = false; // true once the video failed: the canvas serves
    this.writer = null;
    this.presented = 0; // pictures put on screen (see countPresented)
    this.rafPending = false;
    this.busy = 0; // pictures dropped because the track was still taking one
    this.h264 = null; // an H264Decoder once an H.264 frame came
    this.since = Math.max(performance.now(), view.openedPerf || 0);
    this.firstFrameMs = -1;
    this.codec = "";
    this.lastError = "";
    this.rate = new Rate();
    this.lat = [];
    this.nameEl = el("span", { class: "name", text: name });
    this.statEl = el("span", { class: "stat", text: "– fps" });
    this.badge = el("span", { class: "badge", text: "LO" });
    this.el = el("div", { class: "tile waiting", "data-name": name, "data-frames": "0", title: "click to focus, double-click for full screen" },
      this.canvas, this.badge, el("div", { class: "label" }, this.nameEl, this.statEl));
    this.el.addEventListener("click", () => view.toggleFocus(name));
    this.el.addEventListener("dblclick", () => view.fullscreen(this.el));
    this.lastAt = 0;
    this.shownTime = 0; // capture time of the picture on the canvas, Unix ms
    this.fc.onShown = (f) => this.shown(f, 0, "jpeg");
  }
  // shown notes a picture on the canvas: a JPEG drawn, or an H.264
  // frame decoded at decoded (this page's clock, ms).
  shown(f, decoded, codec) {
    if (this.firstFrameMs < 0) this.firstFrameMs = Math.round(performance.now() - this.since);
    this.el.classList.remove("waiting");
    if (codec === "jpeg") {
      this.showOn(this.canvas);
      this.countPresented();
    }
    const d = this.el.dataset;
    d.frames = String(this.fc.shown + (this.h264 ? this.h264.stats.decoded : 0));
    this.shownTime = f.time;
    d.shownTime = String(f.time);
    if (codec !== "jpeg" && this.view.replayFrom == null) {
      // Capture to decoded: the latency of what is on screen.
      const now = Date.now();
      this.rate.add(now);
      this.lat.push(decoded - f.time);
      if (this.lat.length > 60) this.lat.shift();
    }
    d.codec = codec;
    if (d.layer !== f.layer) {
      d.layer = f.layer;
      const small = f.layer === "lo" || f.layer === "h264lo";
      this.badge.textContent = (small ? "LO" : "HI") + (codec === "jpeg" ? "" : " · H.264");
      this.badge.className = "badge " + (small ? "lo" : "hi");
      d.size = f.width + "x" + f.height;
      this.tick(Date.now(), this.view.clock);
    }
    d.size = f.width + "x" + f.height;
    this.exposeStats();
  }
  // exposeStats writes the tile's decoder counters to its data-
  // attributes, where tests and the console read them (stats()).
  exposeStats() {
    const d = this.el.dataset;
    d.firstFrameMs = String(this.firstFrameMs);
    if (!this.h264) return;
    const s = this.h264.stats;
    d.decoded = String(s.decoded);
    d.keyframes = String(s.keyframes);
    d.decodeErrors = String(s.decodeErrors);
    d.corruptShown = String(s.corruptShown);
    d.gaps = String(s.gaps);
    d.waited = String(s.waited);
    d.keyRequests = String(s.keyRequests);
    d.behind = String(s.behind);
  }
  stats() {
    const s = this.h264 ? this.h264.stats : {};
    const d = this.el.dataset;
    return {
      name: this.name, codec: d.codec || "", layer: d.layer || "", size: d.size || "",
      frames: +(d.frames || 0), fps: +(d.fps || 0), firstFrameMs: this.firstFrameMs, shownTime: this.shownTime,
      latency: d.latency ? +d.latency : null, lastError: this.lastError, ...s,
      render: this.writer ? "video" : "canvas", presented: this.presented, busy: this.busy,
    };
  }
  // push takes a frame that came at arrived (this page's clock, ms). For
  // JPEG it keeps arrived minus the capture time (the publisher's clock,
  // which is the gateway's): tick adds the clock offset as it stands
  // then, so the figure and its error always come from the same probe.
  // H.264 frames go to the decoder, and count once decoded.
  push(frame, now, arrived) {
    this.lastAt = now;
    if (frame.codec === "h264") {
      let codec = this.view.codecOf(this.name, frame.layer);
      if (!codec && this.h264 && this.h264.layer === frame.layer && this.view.checking(this.name, frame.layer)) {
        codec = this.h264.codec; // its new codec string is being checked: go on meanwhile
      }
      if (!codec) return; // the page did not ask for it: a left-over frame
      if (!this.h264) this.h264 = new H264Decoder(this, (layer) => this.view.askKey(this.name, layer));
      this.h264.push(frame, codec, arrived);
      this.exposeStats();
      return;
    }
    this.rate.add(now);
    if (this.view.replayFrom == null) {
      // A replayed frame's latency would only say how long ago it was.
      this.lat.push(arrived - frame.time);
      if (this.lat.length > 60) this.lat.shift();
    }
    this.fc.push(frame);
  }
  // present puts a decoded H.264 picture on screen and lets go of it.
  // Where the browser has MediaStreamTrackGenerator, the picture goes to
  // the tile's <video> element through a track: the compositor draws it,
  // with no copy through a canvas on the page's main thread, which in
  // software rendering costs most of a 720p frame (BENCHMARKS.md).
  // Elsewhere, or with ?render=canvas, it is drawn on the canvas.
  present(fr) {
    if (this.view.videoSink && !this.video && !this.noVideo) this.openVideo();
    if (!this.writer) {
      const c = this.canvas;
      if (c.width !== fr.displayWidth || c.height !== fr.displayHeight) {
        c.width = fr.displayWidth;
        c.height = fr.displayHeight;
      }
      this.fc.ctx.drawImage(fr, 0, 0);
      fr.close();
      this.showOn(this.canvas);
      this.countPresented();
      return;
    }
    if (!this.video.requestVideoFrameCallback) this.showOn(this.video);
    if (this.writer.desiredSize <= 0) {
      // The track has not taken the last picture yet: this one is
      // dropped, so that a slow page shows late pictures, never old ones.
      this.busy++;
      fr.close();
      return;
    }
    this.writer.write(fr).catch(() => this.closeVideo()); // the track closes fr
  }
  openVideo() {
    try {
      const track = new MediaStreamTrackGenerator({ kind: "video" });
      const v = el("video", { class: "hidden" });
      v.muted = true;
      v.autoplay = true;
      v.playsInline = true;
      v.disablePictureInPicture = true;
      v.srcObject = new MediaStream([track]);
      this.el.insertBefore(v, this.canvas);
      if (v.requestVideoFrameCallback) {
        // Shown once it has a picture: no black flash after a JPEG.
        const counted = () => {
          if (this.video !== v) return;
          this.presented++;
          this.showOn(v);
          v.requestVideoFrameCallback(counted);
        };
        v.requestVideoFrameCallback(counted);
      }
      // A browser that will not play it gets the canvas instead.
      v.play().catch(() => this.closeVideo());
      this.video = v;
      this.track = track;
      this.writer = track.writable.getWriter();
    } catch (e) {
      this.noVideo = true;
      this.lastError = "no video track for pictures, drawing on the canvas: " + String(e && e.message ? e.message : e);
    }
  }
  // closeVideo stops the tile's track: from then on it draws on the
  // canvas.
  closeVideo() {
    if (!this.video) return;
    this.writer.releaseLock();
    this.track.stop();
    this.video.remove();
    this.video = this.writer = this.track = null;
    this.noVideo = true;
    this.showOn(this.canvas);
  }
  // countPresented counts a picture drawn on the canvas once the page
  // next paints: pictures drawn between two paints count once, as the
  // screen shows only the last of them. (The video element counts its
  // own, requestVideoFrameCallback.)
  countPresented() {
    if (this.rafPending) return;
    this.rafPending = true;
    requestAnimationFrame(() => {
      this.rafPending = false;
      this.presented++;
    });
  }
  // showOn shows the picture element e, the canvas or the video, alone.
  showOn(e) {
    if (!e.classList.contains("hidden")) return;
    e.classList.remove("hidden");
    (e === this.canvas ? this.video : this.canvas)?.classList?.add("hidden");
  }
  close() {
    if (this.h264) this.h264.close();
    this.closeVideo();
  }
  tick(now, clock) {
    const fps = this.rate.perSecond(now);
    const sorted = [...this.lat].sort((a, b) => a - b);
    const p50 = sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
    const parts = [];
    if (this.el.dataset.size) parts.push(this.el.dataset.size.replace("x", "×"));
    parts.push(fps + " fps");
    let title = "";
    if (p50 != null && clock.best) {
      const ms = p50 + clock.best.offset, err = clock.best.rtt / 2;
      const [text, why] = latencyLabel(ms, err);
      parts.push(text);
      title = why;
      this.el.dataset.latency = String(ms);
      this.el.dataset.latencyErr = String(err);
      this.el.dataset.latencyText = text;
    }
    this.statEl.textContent = parts.join(" · ");
    this.statEl.title = title;
    this.el.dataset.fps = String(fps);
    this.el.classList.toggle("stalled", this.lastAt > 0 && now - this.lastAt > STALL_MS);
    if (now - this.lastAt > 1000) this.lat = [];
  }
}

// RoomView renders room into grid; empty shows when nobody publishes.
export class RoomView {
  constructor({ room, grid, empty, host, status, meta, self = "", presence = true, render = "" }) {
    Object.assign(this, { room, grid, empty, host, status, meta, self });
    this.tiles = new Map();
    this.focused = null;
    this.clock = new Clock(); // the gateway's clock against ours
    this.probes = [];
    this.openedAt = 0; // when the socket last opened
    this.openedPerf = 0; // the same, performance.now()
    this.sentHi = null;
    this.viewers = [];
    // H.264: the codec strings of each publisher's H.264 layers (from
    // its presence), and whether this browser decodes each codec string
    // (WebCodecs; undefined while it is being asked).
    this.streams = new Map(); // name -> {h264: codec, h264lo: codec}
    this.decodes = new Map(); // codec -> true | false
    this.known = null; // publishers of the last room state, null before one
    this.webcodecs = typeof VideoDecoder !== "undefined" && typeof EncodedVideoChunk !== "undefined";
    // videoSink: decoded pictures go to a <video> per tile (Tile.present)
    // unless render is "canvas".
    this.videoSink = render !== "canvas" && typeof MediaStreamTrackGenerator === "function";
    this.presence = presence;
    // Replay: the moment asked for (Unix ms; null: live), and the speed.
    this.replayFrom = null;
    this.speed = 1;
    this.onReplayFailed = null; // called when a replaying socket does not open
    this.openSocket();
    this.timer = setInterval(() => this.tick(), 500);
    this.probeTimer = setInterval(() => this.sock.open && this.clock.probe(this.sock), PROBE_EVERY_MS);
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !document.fullscreenElement && this.focused) this.toggleFocus(this.focused);
      if (e.key === "f" && !(e.target instanceof HTMLInputElement)) this.fullscreen(this.host);
    });
    this.layout();
  }
  // path is the viewing socket's URL path and query: live, or a replay
  // from the moment shown last (from the moment asked for, before any),
  // so that a reconnect resumes where the page was.
  path() {
    const q = new URLSearchParams();
    if (this.self) q.set("self", this.self);
    else if (!this.presence) q.set("presence", "0");
    if (this.replayFrom != null) {
      const at = Math.max(this.replayFrom, this.moment() || 0);
      q.set("from", new Date(at).toISOString());
      if (this.speed !== 1) q.set("speed", String(this.speed));
    }
    const qs = q.toString();
    return "/ws/view/" + encodeURIComponent(this.room) + (qs ? "?" + qs : "");
  }
  openSocket() {
    let opened = false;
    // gen tells this socket's callbacks from those of one replaced since.
    const gen = (this.gen = (this.gen || 0) + 1);
    this.sock = new Socket(() => this.path(), {
      onOpen: () => {
        opened = true;
        this.openedAt = Date.now();
        this.openedPerf = performance.now();
        this.sentHi = null;
        this.syncHi();
        this.startProbes();
      },
      onMessage: (d) => gen === this.gen && this.onMessage(d),
      onStatus: (s, r) => {
        if (gen !== this.gen) return;
        if (s === "live" && this.replayFrom != null) s = "replay";
        if (this.status) this.status(s, r);
        // A replay the gateway refuses (no recording, no right) fails
        // at the upgrade, which a page cannot read: the timeline asks.
        if (s === "reconnecting" && !opened && this.replayFrom != null && this.onReplayFailed) this.onReplayFailed();
      },
    });
  }
  // replay shows the room's recording from the moment at (Unix ms), or
  // live again when at is null: the viewing socket is opened afresh, and
  // the tiles come from what it says.
  replay(at, speed = 1) {
    this.replayFrom = at;
    this.speed = speed;
    if (this.sock) this.sock.close();
    for (const name of [...this.tiles.keys()]) this.remove(name);
    this.known = null;
    this.streams.clear();
    this.sentHi = null;
    this.viewers = [];
    this.openSocket();
  }
  // moment is the capture time (Unix ms) of the newest picture shown
  // while replaying, null before one or when live.
  moment() {
    if (this.replayFrom == null) return null;
    let m = 0;
    for (const t of this.tiles.values()) m = Math.max(m, t.shownTime);
    return m || null;
  }
  // replayState says what the page shows, for tests and the console.
  replayState() {
    return { replaying: this.replayFrom != null, from: this.replayFrom, speed: this.speed, moment: this.moment() };
  }
  // startProbes measures the clock afresh on every connection: the
  // gateway may be another machine now.
  startProbes() {
    for (const t of this.probes) clearTimeout(t);
    this.clock.reset();
    this.probes = [];
    for (let i = 0; i < PROBES; i++) {
      this.probes.push(setTimeout(() => this.sock.open && this.clock.probe(this.sock), i * PROBE_GAP_MS));
    }
  }
  onMessage(d) {
    const arrived = nowMs();
    const now = Date.now();
    if (typeof d === "string") {
      let m;
      try {
        m = JSON.parse(d);
      } catch {
        return;
      }
      if (m && m.type === "pong") this.clock.onPong(m, arrived);
      if (m && m.type === "room") this.onRoom(m, now);
      return;
    }
    const f = parseFrame(d);
    if (!f || f.name === this.self) return;
    this.tile(f.name).push(f, now, arrived);
  }
  onRoom(m, now) {
    const names = new Set(m.publishers.map((p) => p.name));
    this.known = [...names].filter((n) => n !== this.self);
    // What a publisher sends is kept while its tile stays: a gateway
    // that has just restarted lists nobody until the next beats.
    for (const p of m.publishers) {
      const s = {};
      for (const l of p.streams || []) {
        if ((l.layer === "h264" || l.layer === "h264lo") && typeof l.codec === "string") {
          s[l.layer] = l.codec;
          this.checkCodec(l.codec);
        }
      }
      this.streams.set(p.name, s);
    }
    for (const p of m.publishers) if (p.name !== this.self) this.tile(p.name);
    // A tile goes when the gateway does not list its publisher and no
    // frame came for STALL_MS while the socket was open. Time spent
    // disconnected does not count: a gateway that has just (re)started
    // lists nobody until it hears the publishers' next presence beat (up
    // to a second later), and judging the tiles by their last frame from
    // before the outage would drop every one of them, and the focus with
    // them, after any restart longer than STALL_MS.
    for (const [name, t] of this.tiles) {
      if (!names.has(name) && now - Math.max(t.lastAt, this.openedAt) > STALL_MS) this.remove(name);
    }
    this.viewers = m.viewers;
    this.pubCount = m.publishers.length;
    this.updateMeta();
    this.syncHi();
  }
  // checkCodec asks WebCodecs once whether it decodes codec, and asks
  // the gateway again for layers when the answer comes.
  checkCodec(codec) {
    if (!this.webcodecs || this.decodes.has(codec)) return;
    this.decodes.set(codec, undefined);
    VideoDecoder.isConfigSupported({ codec, optimizeForLatency: true })
      .then((r) => this.decodes.set(codec, !!(r && r.supported)))
      .catch(() => this.decodes.set(codec, false))
      .then(() => this.syncHi());
  }
  // codecOf is the codec string of a publisher's H.264 layer, if this
  // browser decodes it.
  codecOf(name, layer) {
    const c = (this.streams.get(name) || {})[layer];
    return c && this.decodes.get(c) === true ? c : "";
  }
  // checking says whether the codec string of a publisher's H.264 layer
  // is still being checked (checkCodec).
  checking(name, layer) {
    const c = (this.streams.get(name) || {})[layer];
    return !!c && this.decodes.has(c) && this.decodes.get(c) === undefined;
  }
  // inH264 says whether a publisher's H.264 layer is to come in H.264:
  // this browser decodes its codec string, or the string is new (the
  // publisher changed size) and still being checked while the tile
  // decodes that layer. Meanwhile the frames go on to the open decoder
  // (Tile.push); asking for JPEG instead would drop them, and the tile
  // would wait for a keyframe when H.264 comes back.
  inH264(name, layer) {
    if (this.codecOf(name, layer)) return true;
    const t = this.tiles.get(name);
    return !!(t && t.h264 && t.h264.layer === layer && this.checking(name, layer));
  }
  // askKey asks the publisher, through the gateway, for a keyframe.
  askKey(name, layer) {
    this.sock.send(JSON.stringify({ type: "key", name, layer }));
  }
  // stats is every tile's counters, for tests and the console.
  stats() {
    return [...this.tiles.values()].map((t) => t.stats());
  }
  tile(name) {
    let t = this.tiles.get(name);
    if (!t) {
      t = new Tile(this, name);
      this.tiles.set(name, t);
      const sorted = [...this.tiles.keys()].sort();
      const next = sorted[sorted.indexOf(name) + 1];
      this.grid.insertBefore(t.el, next ? this.tiles.get(next).el : null);
      this.layout();
    }
    return t;
  }
  remove(name) {
    const t = this.tiles.get(name);
    if (!t) return;
    t.el.remove();
    t.close();
    this.tiles.delete(name);
    this.streams.delete(name);
    if (this.focused === name) this.focused = null;
    this.layout();
  }
  toggleFocus(name) {
    this.focused = this.focused === name ? null : name;
    this.layout();
  }
  layout() {
    for (const [name, t] of this.tiles) t.el.classList.toggle("focus", name === this.focused);
    this.grid.classList.toggle("focused", this.focused != null);
    this.empty.classList.toggle("hidden", this.tiles.size > 0);
    this.grid.classList.toggle("hidden", this.tiles.size === 0);
    this.syncHi();
    this.updateMeta();
  }
  // syncHi asks for the focused tile, or the only one, full size (the
  // rest come small), and in H.264 every publisher whose layer of that
  // size this browser decodes; JPEG for the rest, when there are any
  // (or the room is not known yet).
  syncHi() {
    let hi = [];
    if (this.focused) hi = [this.focused];
    else if (this.tiles.size === 1) hi = [...this.tiles.keys()];
    // Everyone the page knows of: listed in the room, or on a tile.
    const names = new Set([...(this.known || []), ...this.tiles.keys()]);
    const h264 = [];
    for (const name of names) {
      if (this.inH264(name, hi.includes(name) ? "h264" : "h264lo")) h264.push(name);
    }
    h264.sort();
    h264.splice(64); // the gateway's limit: the rest come in JPEG
    // JPEG for the rest; for everyone until the room is known, or while
    // it looks empty (a JPEG publisher that comes is shown at once).
    const jpeg = this.known === null || names.size === 0 || h264.length < names.size;
    const key = JSON.stringify([hi, h264, jpeg]);
    if (key === this.sentHi || !this.sock || !this.sock.open) return;
    this.sentHi = key;
    this.sock.send(JSON.stringify({ hi, h264, jpeg }));
  }
  updateMeta() {
    if (!this.meta) return;
    const n = this.tiles.size;
    const v = this.viewers.length;
    this.meta.textContent = n + (n === 1 ? " publisher" : " publishers") + " · " + v + (v === 1 ? " viewer" : " viewers");
  }
  tick() {
    const now = Date.now();
    for (const t of this.tiles.values()) t.tick(now, this.clock);
  }
  fullscreen(target) {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (target && target.requestFullscreen) target.requestFullscreen().catch(() => {});
  }
}
