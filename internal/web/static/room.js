// room.js: a live room grid. One WebSocket brings every publisher's
// frames: lo for the grid, hi for the focused (or only) tile.
import { Socket, FrameCanvas, Rate, Clock, el, parseFrame, nowMs, latencyLabel } from "./wire.js";

const STALL_MS = 2500;
// Clock probes: a few on connect, then one every PROBE_EVERY_MS.
const PROBES = 5;
const PROBE_GAP_MS = 150;
const PROBE_EVERY_MS = 10000;

class Tile {
  constructor(view, name) {
    this.name = name;
    this.canvas = el("canvas");
    this.fc = new FrameCanvas(this.canvas);
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
    this.fc.onShown = (f) => {
      this.el.classList.remove("waiting");
      this.el.dataset.frames = String(this.fc.shown);
      if (this.el.dataset.layer !== f.layer) {
        this.el.dataset.layer = f.layer;
        this.badge.textContent = f.layer.toUpperCase();
        this.badge.className = "badge " + f.layer;
        this.el.dataset.size = f.width + "x" + f.height;
        this.tick(Date.now(), view.clock);
      }
      this.el.dataset.size = f.width + "x" + f.height;
    };
  }
  // push shows a frame that came at arrived (this page's clock, ms). It
  // keeps arrived minus the capture time (the publisher's clock, which is
  // the gateway's): tick adds the clock offset as it stands then, so the
  // figure and its error always come from the same probe.
  push(frame, now, arrived) {
    this.lastAt = now;
    this.rate.add(now);
    this.lat.push(arrived - frame.time);
    if (this.lat.length > 60) this.lat.shift();
    this.fc.push(frame);
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
  constructor({ room, grid, empty, host, status, meta, self = "", presence = true }) {
    Object.assign(this, { room, grid, empty, host, status, meta, self });
    this.tiles = new Map();
    this.focused = null;
    this.clock = new Clock(); // the gateway's clock against ours
    this.probes = [];
    this.openedAt = 0; // when the socket last opened
    this.sentHi = null;
    this.viewers = [];
    const q = new URLSearchParams();
    if (self) q.set("self", self);
    else if (!presence) q.set("presence", "0");
    const qs = q.toString();
    this.sock = new Socket("/ws/view/" + encodeURIComponent(room) + (qs ? "?" + qs : ""), {
      onOpen: () => {
        this.openedAt = Date.now();
        this.sentHi = null;
        this.syncHi();
        this.startProbes();
      },
      onMessage: (d) => this.onMessage(d),
      onStatus: (s, r) => status && status(s, r),
    });
    this.timer = setInterval(() => this.tick(), 500);
    this.probeTimer = setInterval(() => this.sock.open && this.clock.probe(this.sock), PROBE_EVERY_MS);
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !document.fullscreenElement && this.focused) this.toggleFocus(this.focused);
      if (e.key === "f" && !(e.target instanceof HTMLInputElement)) this.fullscreen(this.host);
    });
    this.layout();
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
    this.tiles.delete(name);
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
  // syncHi asks for hi of the focused tile, or of the only one.
  syncHi() {
    let hi = [];
    if (this.focused) hi = [this.focused];
    else if (this.tiles.size === 1) hi = [...this.tiles.keys()];
    const key = hi.join(",");
    if (key === this.sentHi || !this.sock || !this.sock.open) return;
    this.sentHi = key;
    this.sock.send(JSON.stringify({ hi }));
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
