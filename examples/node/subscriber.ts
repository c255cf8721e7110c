// Subscribes to rooms on a roomcast server and prints what arrives, one JSON
// object a line, until interrupted. It reconnects and resumes after a
// disconnect (see resume.ts).
//
// usage: subscriber.ts [--server HOST:PORT] [--token TOKEN] [--tls-ca FILE] ROOM...
//
// Like `roomcast subscribe`, it waits for a server that is down, saying so on
// stderr at every attempt.

import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { MessageSchema } from "../../gen/ts/roomcast/v1/broker_pb.js";
import { checkConnectArgs, clientOf, connectArgs, describe, describeError } from "./client.js";
import { JoinError, ResumingSubscription, codeName } from "./resume.js";

const usage =
  "usage: subscriber.ts [--server HOST:PORT] [--token TOKEN] [--tls-ca FILE] [--tls-server-name NAME] [--insecure-plaintext-token] ROOM...";

function emit(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function parse() {
  try {
    return parseArgs({ options: connectArgs, allowPositionals: true });
  } catch (e) {
    console.error(`subscriber: ${e instanceof Error ? e.message : String(e)}\n${usage}`);
    process.exit(2);
  }
}

const { values, positionals: rooms } = parse();

async function main(): Promise<void> {
  if (rooms.length === 0) {
    console.error(usage);
    process.exit(2);
  }
  const problem = checkConnectArgs(values);
  if (problem !== undefined) {
    console.error(`subscriber: ${problem}\n${usage}`);
    process.exit(2);
  }
  const stop = new AbortController();
  process.on("SIGINT", () => stop.abort());
  process.on("SIGTERM", () => stop.abort());

  const sub = new ResumingSubscription(clientOf(values), rooms);
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
        console.error(
          `subscriber: ${describe(ev.code, ev.message, values.server)}; retrying in ${(ev.retryInMs / 1000).toFixed(1)}s`,
        );
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
  console.error(`subscriber: ${err instanceof JoinError ? err.message : describeError(err, values.server)}`);
  process.exit(1);
});
