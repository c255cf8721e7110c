// Watches rooms on a roomcast server's web handler (`roomcast serve
// --http-listen`) with one Watch call over the Connect protocol, and prints
// what arrives as JSON lines, the same as subscriber.ts, until the call ends
// or it is interrupted. Watch is the call browsers use: the request names
// every room at once, with a position to resume from for any of them.
//
// usage: watch.ts [--server URL] [--token TOKEN] [--http1] [--json]
//                 [--from ROOM=OFFSET@EPOCH]... ROOM...
//
//   --server URL   the web handler: $ROOMCAST_WEB_SERVER, else http://127.0.0.1:8080
//   --http1        HTTP/1.1 rather than HTTP/2 (h2c for http://)
//   --json         the Connect protocol's JSON rather than binary protobuf
//   --from ROOM=OFFSET@EPOCH
//                  resume ROOM after OFFSET of EPOCH: the server replays the
//                  messages after it it still holds, and says recovered: false
//                  when it cannot (another epoch, history gone)
//
// It exits with status 0 when interrupted or when the server ends the call
// with OK, and 1, saying why on stderr, when the call fails: reconnecting,
// with the positions printed, is the caller's choice (see the web example's
// watcher.ts for a loop that does).

import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { BrokerService, MessageSchema, type Position } from "../../gen/ts/roomcast/v1/broker_pb.js";
import { codeName } from "./resume.js";

const usage =
  "usage: watch.ts [--server URL] [--token TOKEN] [--http1] [--json] [--from ROOM=OFFSET@EPOCH]... ROOM...";

function emit(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function fail(msg: string, status: number): never {
  console.error(`watch: ${msg}`);
  process.exit(status);
}

function parse() {
  try {
    return parseArgs({
      options: {
        server: { type: "string", default: process.env.ROOMCAST_WEB_SERVER || "http://127.0.0.1:8080" },
        token: { type: "string", default: process.env.ROOMCAST_TOKEN ?? "" },
        http1: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        from: { type: "string", multiple: true, default: [] },
      },
      allowPositionals: true,
    });
  } catch (e) {
    fail(`${e instanceof Error ? e.message : String(e)}\n${usage}`, 2);
  }
}

/** The positions of --from ROOM=OFFSET@EPOCH, by room. */
function positions(from: string[]): Map<string, Pick<Position, "offset" | "epoch">> {
  const m = new Map<string, Pick<Position, "offset" | "epoch">>();
  for (const f of from) {
    const match = /^(.+)=(\d+)@(.*)$/.exec(f);
    if (match === null) {
      fail(`--from ${f}: want ROOM=OFFSET@EPOCH\n${usage}`, 2);
    }
    m.set(match[1], { offset: BigInt(match[2]), epoch: match[3] });
  }
  return m;
}

const { values, positionals: rooms } = parse();
const stop = new AbortController();
process.on("SIGINT", () => stop.abort());
process.on("SIGTERM", () => stop.abort());

async function main(): Promise<void> {
  if (rooms.length === 0) {
    fail(usage, 2);
  }
  const from = positions(values.from);
  for (const room of from.keys()) {
    if (!rooms.includes(room)) {
      fail(`--from names ${room}, which is not among the rooms`, 2);
    }
  }
  const interceptors: Interceptor[] = [];
  if (values.token) {
    interceptors.push((next) => (req) => {
      req.header.set("authorization", `Bearer ${values.token}`);
      return next(req);
    });
  }
  const transport = createConnectTransport({
    baseUrl: values.server,
    httpVersion: values.http1 ? "1.1" : "2",
    useBinaryFormat: !values.json,
    interceptors,
  });
  const client = createClient(BrokerService, transport);

  const request = { rooms: rooms.map((room) => ({ room, position: from.get(room) })) };
  for await (const resp of client.watch(request, { signal: stop.signal })) {
    const ev = resp.event;
    switch (ev.case) {
      case "reply": {
        const room = ev.value.id;
        if (ev.value.error !== undefined) {
          emit({ event: "refused", room, code: codeName(ev.value.error.code as Code), message: ev.value.error.message });
        } else if (ev.value.result.case === "join") {
          const j = ev.value.result.value;
          const resumed = from.has(room);
          emit({ event: "joined", room, offset: j.offset.toString(), epoch: j.epoch, resumed, recovered: j.recovered });
          if (resumed && !j.recovered) {
            console.error(`watch: ${room}: the messages after the position given are lost; going on from offset ${j.offset}`);
          }
        }
        break;
      }
      case "batch":
        for (const m of ev.value.messages) {
          emit({ event: "message", batch: ev.value.messages.length, message: toJson(MessageSchema, m) });
        }
        break;
    }
  }
}

main().catch((e: unknown) => {
  if (stop.signal.aborted) {
    return; // interrupted
  }
  const err = ConnectError.from(e);
  fail(`${codeName(err.code)}: ${err.rawMessage}`, 1);
});
