import { RoomView } from "./room.js";
import { Timeline } from "./timeline.js";
import { roomFromPath, setStatus } from "./wire.js";

const room = roomFromPath();
const $ = (id) => document.getElementById(id);
document.title = room + " · vidhub";
$("room-name").textContent = room;
const pub = "/rooms/" + encodeURIComponent(room) + "/publish";
$("publish-link").href = pub;
$("empty-publish").href = pub;
$("empty-cmd").textContent = "vidhub publish --room " + room + " --name you --source 0";
const view = new RoomView({
  room,
  grid: $("grid"),
  empty: $("empty"),
  host: $("host"),
  meta: $("meta"),
  status: (s, r) => setStatus($("status"), s, r),
  // ?render=canvas draws H.264 pictures on a canvas, as browsers
  // without MediaStreamTrackGenerator do.
  render: new URLSearchParams(location.search).get("render") || "",
});
$("fs").addEventListener("click", () => view.fullscreen($("host")));
view.timeline = new Timeline({
  room, view,
  bar: $("timeline"), range: $("tl-range"), first: $("tl-first"), last: $("tl-last"),
  moment: $("tl-moment"), live: $("tl-live"),
});
window.vidhubRoom = view; // for tests and the console
