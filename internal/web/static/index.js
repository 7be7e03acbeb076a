// index.js: the live room directory, from /api/rooms, with a thumbnail
// (lo layer, 2 fps) of every publisher.
import { Socket, FrameCanvas, el, parseFrame, setStatus, NAME_RE, NAME_RULE } from "./wire.js";

const $ = (id) => document.getElementById(id);
const cards = new Map(); // room -> card

class Card {
  constructor(room) {
    this.room = room;
    this.thumbs = new Map();
    const href = "/rooms/" + encodeURIComponent(room);
    this.counts = el("span", { class: "counts" });
    this.grid = el("div", { class: "thumbs" });
    this.viewers = el("div", { class: "viewers" });
    this.el = el("article", { class: "card", "data-room": room },
      el("header", {}, el("h3", {}, el("a", { href, text: room })), el("span", { class: "spacer" }), this.counts),
      this.grid, this.viewers,
      el("div", { class: "actions" },
        el("a", { class: "btn primary", href, text: "Watch" }),
        el("a", { class: "btn", href: href + "/publish", text: "Join with camera" })));
    this.sock = new Socket("/ws/view/" + encodeURIComponent(room) + "?fps=2&presence=0", {
      onMessage: (d) => {
        if (typeof d === "string") return;
        const f = parseFrame(d);
        const t = f && this.thumbs.get(f.name);
        if (t) t.fc.push(f);
      },
    });
  }
  update(info) {
    const pubs = info.participants.filter((m) => m.role === "publisher");
    const views = info.participants.filter((m) => m.role !== "publisher");
    this.counts.textContent = pubs.length + (pubs.length === 1 ? " publisher · " : " publishers · ") + views.length + (views.length === 1 ? " viewer" : " viewers");
    const names = new Set(pubs.map((p) => p.name));
    for (const [n, t] of this.thumbs) if (!names.has(n)) { t.el.remove(); this.thumbs.delete(n); }
    for (const p of pubs) {
      let t = this.thumbs.get(p.name);
      if (!t) {
        const canvas = el("canvas");
        const spec = el("span");
        t = { fc: new FrameCanvas(canvas), spec, el: el("div", { class: "thumb", "data-name": p.name }, canvas, el("div", { class: "cap" }, el("span", { text: p.name }), spec)) };
        this.thumbs.set(p.name, t);
        this.grid.append(t.el);
      }
      const hi = (p.layers || []).find((l) => l.layer === "hi");
      t.spec.textContent = hi ? hi.width + "×" + hi.height + " " + Math.round(hi.fps) + "fps" : "";
    }
    this.viewers.textContent = views.length ? "watching: " + views.map((v) => v.name).join(", ") : "";
  }
  close() {
    this.sock.close();
    this.el.remove();
  }
}

async function refresh() {
  try {
    const r = await fetch("/api/rooms", { cache: "no-store" });
    if (!r.ok) throw new Error(r.status);
    const rooms = await r.json();
    setStatus($("status"), "live");
    const seen = new Set();
    for (const info of rooms) {
      seen.add(info.room);
      let c = cards.get(info.room);
      if (!c) {
        c = new Card(info.room);
        cards.set(info.room, c);
        $("rooms").append(c.el);
      }
      c.update(info);
    }
    for (const [room, c] of cards) if (!seen.has(room)) { c.close(); cards.delete(room); }
    $("empty").classList.toggle("hidden", rooms.length > 0);
    const people = rooms.reduce((n, r) => n + r.participants.length, 0);
    $("meta").textContent = rooms.length + (rooms.length === 1 ? " room · " : " rooms · ") + people + " participants";
  } catch (e) {
    setStatus($("status"), "reconnecting", "the gateway does not answer");
  }
}

$("open").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("open-name").value.trim();
  if (!NAME_RE.test(name)) {
    $("open-hint").textContent = "A room name is " + NAME_RULE + ".";
    return;
  }
  location.href = "/rooms/" + encodeURIComponent(name);
});
refresh();
setInterval(refresh, 1500);
