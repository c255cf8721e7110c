// Publishes messages to a room on a roomcast server, in order, and prints
// each one's offset and the room's epoch as a JSON line.
//
// usage: publisher.ts [--server HOST:PORT] [--token TOKEN] [--tls-ca FILE]
//                     [--content-type TYPE] [--header KEY=VALUE]... [--base64]
//                     ROOM MESSAGE...
//
// Like `roomcast publish`, it makes one attempt per message: when the server
// cannot be reached it says so and exits with status 1.

import { parseArgs } from "node:util";
import { checkConnectArgs, clientOf, connectArgs, describeError } from "./client.js";

const usage =
  "usage: publisher.ts [--server HOST:PORT] [--token TOKEN] [--tls-ca FILE] [--tls-server-name NAME] [--insecure-plaintext-token] " +
  "[--content-type TYPE] [--header KEY=VALUE]... [--base64] ROOM MESSAGE...";

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
  const client = clientOf(values);
  for (const msg of messages) {
    if (values.base64 && !/^[A-Za-z0-9+/]*={0,2}$/.test(msg)) {
      fail(`publisher: ${JSON.stringify(msg)} is not base64`, 2);
    }
    const payload = values.base64
      ? { case: "data" as const, value: new Uint8Array(Buffer.from(msg, "base64")) }
      : { case: "text" as const, value: msg };
    try {
      const resp = await client.publish(
        { room, contentType: values["content-type"], headers, payload },
        { timeoutMs: 10_000 },
      );
      process.stdout.write(JSON.stringify({ offset: resp.offset.toString(), epoch: resp.epoch }) + "\n");
    } catch (e) {
      fail(`publisher: ${describeError(e, values.server)}`);
    }
  }
}

main().catch((err: unknown) => fail(`publisher: ${err instanceof Error ? err.message : String(err)}`));
