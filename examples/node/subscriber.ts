// Subscribes to rooms on a roomcast server and prints what arrives, one JSON
// object a line, until interrupted. It reconnects and resumes after a
// disconnect (see resume.ts).
//
// usage: subscriber.ts [--server HOST:PORT] ROOM...

import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { MessageSchema } from "../../gen/ts/roomcast/v1/broker_pb.js";
import { brokerClient, defaultServer } from "./client.js";
import { ResumingSubscription, codeName } from "./resume.js";

const usage = "usage: subscriber.ts [--server HOST:PORT] ROOM...";

function emit(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

async function main(): Promise<void> {
  const { values, positionals: rooms } = parseArgs({
    options: { server: { type: "string", default: defaultServer } },
    allowPositionals: true,
  });
  if (rooms.length === 0) {
    console.error(usage);
    process.exit(2);
  }
  const stop = new AbortController();
  process.on("SIGINT", () => stop.abort());
  process.on("SIGTERM", () => stop.abort());

  const sub = new ResumingSubscription(brokerClient(values.server), rooms);
  for await (const ev of sub.events(stop.signal)) {
    switch (ev.kind) {
      case "joined":
        emit({
          event: "joined",
          room: ev.room,
          offset: ev.offset.toString(),
          epoch: ev.epoch,
          resumed: ev.resumed,
          recovered: ev.recovered,
        });
        if (ev.resumed && !ev.recovered) {
          console.error(
            `subscriber: ${ev.room}: messages after the last one received are lost; going on from offset ${ev.offset}`,
          );
        }
        break;
      case "disconnected":
        emit({ event: "disconnected", code: codeName(ev.code), message: ev.message, retryIn: ev.retryInMs / 1000 });
        break;
      case "batch": // one streamed response
        for (const m of ev.batch.messages) {
          emit({ event: "message", batch: ev.batch.messages.length, message: toJson(MessageSchema, m) });
        }
        break;
    }
  }
}

main().catch((err: unknown) => {
  console.error(`subscriber: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
