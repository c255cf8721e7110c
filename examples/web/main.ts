// The example page: watches a room of a roomcast server over Connect, shows
// its messages as they come, resumes after the call ends (a server restart),
// shows a gap when the server cannot replay what was missed, and publishes
// what the form is given. Everything it needs comes from the page's query:
//
//   ?server=http://127.0.0.1:8080  the server's web handler (roomcast serve --http-listen)
//   &room=chat.lobby               the room; repeat room= to watch several
//   &token=...                     a JWT or API key, sent as a bearer token
//   &format=json                   Connect with JSON; binary protobuf by default
//   &protocol=grpcweb              gRPC-Web instead of Connect

import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { BrokerService, type Message } from "../../gen/ts/roomcast/v1/broker_pb.js";
import { type Gap, type WatchEvent, Watcher } from "./watcher.js";

const params = new URLSearchParams(location.search);
const server = params.get("server") || location.origin;
const rooms = [...new Set(params.getAll("room").filter((r) => r !== ""))];
if (rooms.length === 0) {
  rooms.push("chat.lobby");
}
const token = params.get("token") ?? "";

function transport(): Transport {
  const interceptors: Interceptor[] = [];
  if (token !== "") {
    interceptors.push((next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    });
  }
  if (params.get("protocol") === "grpcweb") {
    return createGrpcWebTransport({ baseUrl: server, useBinaryFormat: true, interceptors });
  }
  return createConnectTransport({ baseUrl: server, useBinaryFormat: params.get("format") !== "json", interceptors });
}

const client = createClient(BrokerService, transport());

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) {
    throw new Error(`the page has no #${id}`);
  }
  return el as T;
}

const statusEl = byId("status");
const list = byId<HTMLOListElement>("messages");

function setStatus(state: "connecting" | "connected" | "reconnecting" | "failed", text: string): void {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

const utf8 = new TextDecoder();

function bodyText(m: Message): string {
  switch (m.payload.case) {
    case "text":
      return m.payload.value;
    case "data":
      return utf8.decode(m.payload.value);
    default:
      return "";
  }
}

// Each message is an <li class="message" data-room data-offset data-epoch>,
// each gap an <li class="gap" data-room data-first data-last data-epoch>,
// in the order they happened: a test, or a person, reads the room's story
// from top to bottom.
function showMessage(m: Message, epoch: string): void {
  const li = document.createElement("li");
  li.className = "message";
  li.dataset.room = m.room;
  li.dataset.offset = m.offset.toString();
  li.dataset.epoch = epoch;
  const offset = document.createElement("span");
  offset.className = "offset";
  offset.textContent = rooms.length > 1 ? `${m.room} #${m.offset}` : `#${m.offset}`;
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = bodyText(m);
  li.append(offset, body);
  list.append(li);
}

function showGap(g: Gap): void {
  const li = document.createElement("li");
  li.className = "gap";
  li.dataset.room = g.room;
  li.dataset.epoch = g.epoch;
  li.dataset.first = g.first.toString();
  li.dataset.last = g.last.toString();
  const missed = g.first <= g.last ? `offsets ${g.first} to ${g.last} missed` : "no offset missed in it";
  if (g.epoch === g.after.epoch) {
    li.textContent = `gap in ${g.room}: the server no longer holds what followed #${g.after.offset}; ${missed}`;
  } else {
    li.textContent =
      `gap in ${g.room}: the server lost the room's history (new epoch ${g.epoch}); ` +
      `what followed #${g.after.offset} of the old epoch is lost, and in the new one ${missed}`;
  }
  list.append(li);
}

// The rooms joined on the current call: the page is "connected" once every
// room is, so that what is published from then on shows.
const joined = new Set<string>();
// The rooms of the current call whose join said recovered: false.
const gapped = new Set<string>();
// The calls that ended since the page was last connected.
let retries = 0;

function showJoins(): void {
  if (joined.size < rooms.length) {
    setStatus("connecting", "joining");
    return;
  }
  retries = 0;
  statusEl.dataset.retries = "0";
  const gaps = [...gapped].join(", ");
  setStatus("connected", gaps === "" ? "connected" : `connected; gap in ${gaps}: recovered: false`);
}

function render(ev: WatchEvent, watcher: Watcher): void {
  switch (ev.kind) {
    case "connected":
      joined.clear();
      gapped.clear();
      showJoins();
      break;
    case "joined":
      statusEl.dataset.epoch = ev.epoch;
      if (ev.resumed && !ev.recovered) {
        gapped.add(ev.room); // before showJoins: the gap event follows
      }
      joined.add(ev.room);
      showJoins();
      break;
    case "gap":
      showGap(ev.gap);
      break;
    case "messages":
      for (const m of ev.messages) {
        showMessage(m, watcher.positions.get(m.room)?.epoch ?? "");
      }
      break;
    case "disconnected":
      statusEl.dataset.retries = String(++retries);
      setStatus("reconnecting", `reconnecting in ${(ev.retryInMs / 1000).toFixed(1)}s (${ev.message})`);
      break;
  }
}

async function watch(): Promise<void> {
  const watcher = new Watcher(client, rooms);
  const stop = new AbortController();
  addEventListener("pagehide", () => stop.abort());
  try {
    for await (const ev of watcher.events(stop.signal)) {
      render(ev, watcher);
    }
  } catch (e) {
    setStatus("failed", `stopped: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function setupPublish(): void {
  const form = byId<HTMLFormElement>("publish");
  const input = byId<HTMLInputElement>("publish-text");
  const result = byId("publish-result");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value;
    result.dataset.state = "sending";
    result.textContent = "publishing…";
    client.publish({ room: rooms[0], payload: { case: "text", value: text } }).then(
      (resp) => {
        result.dataset.state = "ok";
        result.dataset.offset = resp.offset.toString();
        result.textContent = `published as #${resp.offset}`;
        input.value = "";
      },
      (err: unknown) => {
        result.dataset.state = "error";
        result.textContent = `not published: ${err instanceof Error ? err.message : String(err)}`;
      },
    );
  });
}

byId("room").textContent = rooms.join(", ");
byId("server").textContent = server;
setupPublish();
void watch();
