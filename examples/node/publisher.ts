// Publishes messages to a room on a roomcast server, in order, and prints
// each one's offset and the room's epoch as a JSON line.
//
// usage: publisher.ts [--server HOST:PORT] [--token TOKEN] [--tls-ca FILE]
//                     [--content-type TYPE] [--header KEY=VALUE]... [--base64]
//                     [--stream] ROOM MESSAGE...
//
// Like `roomcast publish`, it makes one attempt per message: when the server
// cannot be reached it says so and exits with status 1.
//
// With --stream, it sends them all on one PublishStream without waiting for
// each answer, and prints the answers as they come, in the same order; a
// message the server refuses gets a JSON line with its error, the others go
// on, and the exit status is 1.

import { parseArgs } from "node:util";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { PublishRequestSchema } from "../../gen/ts/roomcast/v1/broker_pb.js";
import { checkConnectArgs, clientOf, connectArgs, describeError } from "./client.js";
import { codeName } from "./resume.js";

const usage =
  "usage: publisher.ts [--server HOST:PORT] [--token TOKEN] [--tls-ca FILE] [--tls-server-name NAME] [--insecure-plaintext-token] " +
  "[--content-type TYPE] [--header KEY=VALUE]... [--base64] [--stream] ROOM MESSAGE...";

type Publish = MessageInitShape<typeof PublishRequestSchema>;

function printPublished(offset: bigint, epoch: string): void {
  process.stdout.write(JSON.stringify({ offset: offset.toString(), epoch }) + "\n");
}

/**
 * Sends reqs on one PublishStream, pipelined (the requests are written as
 * the stream takes them while the answers are read), and prints each
 * answer. Returns how many messages were refused.
 */
async function publishStream(client: ReturnType<typeof clientOf>, reqs: Publish[]): Promise<number> {
  async function* requests() {
    for (const [i, publish] of reqs.entries()) {
      yield { id: String(i), publish };
    }
  }
  let refused = 0;
  for await (const resp of client.publishStream(requests(), { timeoutMs: 30_000 })) {
    if (resp.result.case === "ok") {
      printPublished(resp.result.value.offset, resp.result.value.epoch);
    } else if (resp.result.case === "error") {
      refused++;
      const { code, message } = resp.result.value;
      process.stdout.write(JSON.stringify({ id: resp.id, error: { code: codeName(code), message } }) + "\n");
    }
  }
  return refused;
}

function fail(msg: string, status = 1): never {
  console.error(msg);
  process.exit(status);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      ...connectArgs,
      "content-type": { type: "string", default: "" },
      header: { type: "string", multiple: true, default: [] },
      base64: { type: "boolean", default: false },
      stream: { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  const [room, ...messages] = positionals;
  if (room === undefined || messages.length === 0) {
    fail(usage, 2);
  }
  const headers: Record<string, string> = {};
  for (const h of values.header) {
    const eq = h.indexOf("=");
    if (eq < 0) {
      fail(`publisher: ${JSON.stringify(h)} is not KEY=VALUE`, 2);
    }
    headers[h.slice(0, eq)] = h.slice(eq + 1);
  }

  const problem = checkConnectArgs(values);
  if (problem !== undefined) {
    fail(`publisher: ${problem}\n${usage}`, 2);
  }
  const reqs: Publish[] = messages.map((msg) => {
    if (values.base64 && !/^[A-Za-z0-9+/]*={0,2}$/.test(msg)) {
      fail(`publisher: ${JSON.stringify(msg)} is not base64`, 2);
    }
    const payload = values.base64
      ? { case: "data" as const, value: new Uint8Array(Buffer.from(msg, "base64")) }
      : { case: "text" as const, value: msg };
    return { room, contentType: values["content-type"], headers, payload };
  });

  const client = clientOf(values);
  try {
    if (values.stream) {
      process.exitCode = (await publishStream(client, reqs)) > 0 ? 1 : 0;
      return;
    }
    for (const req of reqs) {
      const resp = await client.publish(req, { timeoutMs: 10_000 });
      printPublished(resp.offset, resp.epoch);
    }
  } catch (e) {
    fail(`publisher: ${describeError(e, values.server)}`);
  }
}

main().catch((err: unknown) => fail(`publisher: ${err instanceof Error ? err.message : String(err)}`));
