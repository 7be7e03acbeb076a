// timeline.js: the room page's timeline over a recorded room's retained
// window. Drag (or click, or move with the keyboard) the handle back in
// time and the page replays the recording from there; "Live" goes back.

// REFRESH_MS is how often the retained window is asked for again.
const REFRESH_MS = 3000;
// SETTLE_MS lets a run of key presses settle before the page re-opens
// its socket once, at the last one.
const SETTLE_MS = 350;
// STEP_S and BIG_STEP_S are how far an arrow key (with Shift: BIG_STEP_S)
// moves the handle, in seconds.
const STEP_S = 5;
const BIG_STEP_S = 60;
// LIVE_EDGE_S: a handle this close to the window's end means live.
const LIVE_EDGE_S = 2;

// clock shows a moment as a clock time, with the date when it is not
// today.
export function clock(ms) {
  const d = new Date(ms);
  const t = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return d.toDateString() === new Date().toDateString() ? t : d.toLocaleDateString() + " " + t;
}

// Timeline drives view (a RoomView) from the elements of the room page's
// timeline bar: bar (the whole bar, hidden while the room is not
// recorded or the page may not replay it), range (an input type=range,
// in Unix seconds), first and last (the window's ends), moment (what is
// shown) and live (the button).
export class Timeline {
  constructor({ room, view, bar, range, first, last, moment, live }) {
    Object.assign(this, { room, view, bar, range, first, last, momentEl: moment, liveBtn: live });
    this.doc = null; // the last answer of /api/rooms/<room>/recording
    this.dragging = false;
    this.settle = 0;
    this.reason = "";
    this.notice = ""; // why the last replay was refused, shown for a while
    range.addEventListener("input", () => {
      this.dragging = true;
      this.show(+range.value * 1000, true);
    });
    range.addEventListener("change", () => this.seekSoon(+range.value * 1000));
    range.addEventListener("keydown", (e) => this.onKey(e));
    live.addEventListener("click", () => this.goLive());
    view.onReplayFailed = () => this.replayFailed();
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    this.ticker = setInterval(() => this.tick(), 250);
  }
  // refresh asks the gateway for the retained window, and shows the bar
  // while there is one the page may replay.
  async refresh() {
    let doc = null;
    try {
      const r = await fetch("/api/rooms/" + encodeURIComponent(this.room) + "/recording", { cache: "no-store" });
      doc = await r.json();
    } catch {
      doc = null;
    }
    this.doc = doc;
    const ok = !!(doc && doc.recording && doc.replay && doc.first && doc.last);
    this.reason = doc && doc.reason ? doc.reason : "";
    this.bar.classList.toggle("hidden", !ok && !this.replaying && !this.notice);
    if (!ok) return;
    const lo = Math.floor(Date.parse(doc.first) / 1000);
    const hi = Math.ceil(Date.parse(doc.last) / 1000);
    this.range.min = String(lo);
    this.range.max = String(hi);
    this.first.textContent = clock(lo * 1000);
    this.last.textContent = clock(hi * 1000);
    this.tick();
  }
  get replaying() {
    return this.view.replayFrom != null;
  }
  // tick moves the handle with what is shown: the newest recorded
  // picture while replaying, the window's end while live.
  tick() {
    if (this.dragging || this.settle) return;
    if (!this.replaying) {
      this.range.value = this.range.max;
      this.show(null);
      return;
    }
    const m = this.view.moment() || this.view.replayFrom;
    this.range.value = String(Math.round(m / 1000));
    this.show(m);
  }
  // show writes the moment (Unix ms; null: live) under the bar; preview
  // marks a moment being picked, not yet shown.
  show(ms, preview = false) {
    const text = ms == null ? (this.notice ? "live · " + this.notice : "live") : (preview ? "go to " : "") + clock(ms);
    this.momentEl.textContent = text;
    this.momentEl.classList.toggle("past", ms != null);
    this.range.setAttribute("aria-valuetext", text);
    this.liveBtn.disabled = !this.replaying;
    this.bar.classList.toggle("replaying", this.replaying);
  }
  onKey(e) {
    let v = +this.range.value;
    const step = e.shiftKey ? BIG_STEP_S : STEP_S;
    switch (e.key) {
      case "ArrowLeft":
      case "ArrowDown":
        v -= step;
        break;
      case "ArrowRight":
      case "ArrowUp":
        v += step;
        break;
      case "Home":
        v = +this.range.min;
        break;
      case "End":
        e.preventDefault();
        this.goLive();
        return;
      default:
        return;
    }
    e.preventDefault();
    v = Math.min(Math.max(v, +this.range.min), +this.range.max);
    this.range.value = String(v);
    this.show(v * 1000, true);
    this.seekSoon(v * 1000);
  }
  // seekSoon replays from ms once the handle has settled.
  seekSoon(ms) {
    this.dragging = false;
    clearTimeout(this.settle);
    this.settle = setTimeout(() => {
      this.settle = 0;
      this.seek(ms);
    }, SETTLE_MS);
  }
  // seek replays from ms (Unix ms), or goes live at the window's end.
  seek(ms) {
    if (ms / 1000 >= +this.range.max - LIVE_EDGE_S) {
      this.goLive();
      return;
    }
    this.notice = "";
    this.view.replay(Math.round(ms));
    this.tick();
  }
  goLive() {
    clearTimeout(this.settle);
    this.settle = 0;
    this.dragging = false;
    if (this.replaying) this.view.replay(null);
    this.tick();
  }
  // replayFailed: the gateway refused the replay's socket. The recording
  // API says why (no recording, or no right to replay it); the page goes
  // back to live and shows the reason.
  async replayFailed() {
    await this.refresh();
    const d = this.doc;
    if (d && d.recording && d.replay) return; // a passing outage: the socket retries
    this.notice = (d && d.reason) || "the gateway refused the replay";
    this.momentEl.title = this.notice;
    this.goLive();
    setTimeout(() => {
      this.notice = "";
      this.momentEl.title = "";
      this.refresh();
    }, 10000);
  }
}
