// The status page's script: it polls the server's info and rooms every
// second and follows one room's messages with server-sent events.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { filter: "", tail: null, tailRoom: "", last: null };

function fmtInt(v) {
  return Number(v || 0).toLocaleString("en-US");
}

function fmtBytes(v) {
  let n = Number(v || 0);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function fmtDuration(s) {
  // A protobuf JSON duration: "3725.5s".
  let secs = Math.floor(parseFloat(s || "0"));
  const d = Math.floor(secs / 86400); secs %= 86400;
  const h = Math.floor(secs / 3600); secs %= 3600;
  const m = Math.floor(secs / 60); secs %= 60;
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + secs + "s";
}

function fmtTime(t) {
  if (!t) return "–";
  const d = new Date(t);
  return d.toLocaleTimeString("en-GB", { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function setConn(ok, text) {
  const c = $("conn");
  c.textContent = text;
  c.className = "pill " + (ok ? "ok" : "bad");
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function showInfo(info) {
  const s = info.server;
  const c = s.counters || {};
  $("server-version").textContent = s.version + (s.revision ? " (" + s.revision.slice(0, 12) + ")" : "");
  $("server-version").title = s.goVersion || "";
  $("server-engine").textContent = s.engine;
  $("server-uptime").textContent = fmtDuration(s.uptime);
  $("server-sessions").textContent = fmtInt(c.sessions);
  $("server-rooms").textContent = fmtInt(c.rooms);
  $("server-published").textContent = fmtInt(c.published);
  $("server-delivered").textContent = fmtInt(c.delivered);
  $("server-retained").textContent = fmtBytes(c.retainedBytes);
  $("server-slow").textContent = fmtInt(c.slowConsumers);
  // Server-wide rates from the counters' change since the last poll.
  const now = performance.now();
  if (state.last) {
    const dt = (now - state.last.at) / 1000;
    if (dt > 0) {
      $("server-publish-rate").textContent = ((Number(c.published || 0) - state.last.published) / dt).toFixed(1) + " msg/s";
      $("server-deliver-rate").textContent = ((Number(c.delivered || 0) - state.last.delivered) / dt).toFixed(1) + " msg/s";
    }
  }
  state.last = { at: now, published: Number(c.published || 0), delivered: Number(c.delivered || 0) };
  if (!info.tail && !state.tail) {
    $("tail-status").textContent = "The live tail is off: start roomcast serve with --status-page-tail to show rooms' messages here.";
  }
  state.tailOn = info.tail;
}

function showRooms(resp) {
  const body = $("rooms").tBodies[0];
  const rows = [];
  for (const r of resp.rooms) {
    const tr = document.createElement("tr");
    tr.dataset.room = r.name;
    if (r.name === state.tailRoom) tr.className = "selected";
    const cells = [
      ["name", r.name, false],
      ["subscribers", fmtInt(r.subscribers), true],
      ["offset", String(r.offset), true],
      ["rate", Number(r.publishRate || 0).toFixed(1), true],
      ["retained", fmtInt(r.retainedMessages), true],
      ["bytes", fmtBytes(r.retainedBytes), true],
      ["last", fmtTime(r.lastPublishTime), false],
    ];
    for (const [cls, text, num] of cells) {
      const td = document.createElement("td");
      td.className = cls + (num ? " num" : "");
      td.textContent = text;
      tr.appendChild(td);
    }
    tr.addEventListener("click", () => startTail(r.name));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  $("rooms-empty").hidden = rows.length > 0;
  $("rooms-shown").textContent = rows.length + " of " + fmtInt(resp.total) + " rooms" + (resp.nextPageToken ? " (first " + rows.length + " shown)" : "");
}

async function poll() {
  try {
    const [info, rooms] = await Promise.all([
      getJSON("status/api/info"),
      getJSON("status/api/rooms?prefix=" + encodeURIComponent(state.filter)),
    ]);
    showInfo(info);
    showRooms(rooms);
    setConn(true, "live");
  } catch (e) {
    setConn(false, "unreachable");
  }
  setTimeout(poll, 1000);
}

function addMessage(m) {
  const li = document.createElement("li");
  const off = document.createElement("span");
  off.className = "off";
  off.textContent = "#" + m.offset;
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = fmtTime(m.publishTime);
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = m.text !== undefined ? m.text : "(" + (m.data ? atob(m.data).length : 0) + " bytes of data)";
  li.append(off, time, body);
  const list = $("tail-messages");
  list.prepend(li);
  while (list.children.length > 200) list.lastChild.remove();
}

function stopTail(reason) {
  if (state.tail) state.tail.close();
  state.tail = null;
  $("tail-stop").disabled = true;
  if (reason) $("tail-status").textContent = reason;
}

function startTail(room) {
  room = room.trim();
  if (!room) return;
  stopTail();
  $("tail-room").value = room;
  state.tailRoom = room;
  for (const tr of $("rooms").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.room === room);
  if (state.tailOn === false) {
    $("tail-status").textContent = "The live tail is off: start roomcast serve with --status-page-tail to show rooms' messages here.";
    return;
  }
  $("tail-messages").replaceChildren();
  $("tail-status").className = "muted";
  $("tail-status").textContent = "Joining " + room + "…";
  const es = new EventSource("status/api/tail?room=" + encodeURIComponent(room));
  state.tail = es;
  $("tail-stop").disabled = false;
  es.addEventListener("joined", (e) => {
    const j = JSON.parse(e.data);
    $("tail-status").textContent = "Following " + j.room + " from offset " + j.offset + " (epoch " + j.epoch + ").";
  });
  es.addEventListener("message", (e) => addMessage(JSON.parse(e.data)));
  es.addEventListener("end", (e) => {
    $("tail-status").className = "error";
    stopTail("The tail ended: " + JSON.parse(e.data).error);
  });
  es.onerror = () => {
    if (state.tail !== es) return;
    $("tail-status").className = "error";
    stopTail("The tail stopped: the server refused it or went away.");
  };
}

$("room-filter").addEventListener("input", (e) => { state.filter = e.target.value.trim(); });
$("tail-start").addEventListener("click", () => startTail($("tail-room").value));
$("tail-room").addEventListener("keydown", (e) => { if (e.key === "Enter") startTail(e.target.value); });
$("tail-stop").addEventListener("click", () => stopTail("Stopped."));
poll();
