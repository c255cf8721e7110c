// A Subscribe stream that survives disconnects.
//
// ResumingSubscription keeps one Subscribe stream open to a roomcast server.
// When the stream ends (the server shuts down, the connection drops, or the
// server cuts a slow consumer off), it reconnects and joins every room again
// with JoinCommand.position set to the last message it delivered, so the
// server replays what was missed. When the server cannot (the room's history
// no longer holds it all, or the server restarted and the room's epoch
// changed), the join reply says recovered: false. That is passed on to the
// caller as a "joined" event with resumed: true and recovered: false, and the
// caller has a gap to fill from its own source of truth.
//
// It uses only the code generated from proto/ (gen/ts) and Connect.

import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import {
  BrokerService,
  type MessageBatch,
  type SubscribeRequestSchema,
} from "../../gen/ts/roomcast/v1/broker_pb.js";

/** The last message a subscriber has in a room: its offset and the room's epoch. */
export interface Position {
  offset: bigint;
  epoch: string;
}

export type Event =
  /**
   * The reply to a join. resumed: the join carried a position (a rejoin
   * after a disconnect, or a start position given by the caller).
   * recovered: with resumed, whether every message after that position
   * follows; false means they are lost and the subscription goes on from
   * offset.
   */
  | {
      kind: "joined";
      room: string;
      offset: bigint;
      epoch: string;
      resumed: boolean;
      recovered: boolean;
    }
  /** One streamed response's messages (and presence events). */
  | { kind: "batch"; batch: MessageBatch }
  /**
   * The stream ended, with code (undefined if the server ended it with OK);
   * the subscription reconnects after retryInMs.
   */
  | { kind: "disconnected"; code: Code | undefined; message: string; retryInMs: number };

/**
 * The server refused a join (a bad room name, no grant, a position past the
 * room's newest offset, ...). Reconnecting would not help.
 */
export class JoinError extends Error {
  constructor(
    readonly room: string,
    readonly code: Code,
    readonly reason: string,
  ) {
    super(`join ${room}: ${codeName(code)}: ${reason}`);
    this.name = "JoinError";
  }
}

/**
 * Stream endings that a new stream can fix. Anything else (Unauthenticated,
 * PermissionDenied, InvalidArgument, Unimplemented, ...) is thrown.
 */
export const retryable: ReadonlySet<Code> = new Set([
  Code.Unavailable, // server shutting down, connection lost
  Code.Canceled, // connection lost, as Connect for Node reports it (events() returns when its signal aborts)
  Code.ResourceExhausted, // cut off as a slow consumer
  Code.Internal,
  Code.Unknown,
  Code.Aborted,
  Code.DeadlineExceeded,
]);

export interface ResumingOptions {
  /** Positions to start from, per room, as saved from `positions`. */
  positions?: Map<string, Position>;
  /** Request headers, such as authorization. */
  headers?: HeadersInit;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Subscribes to rooms and stays subscribed, resuming after disconnects.
 * Iterate over events() for "joined", "batch" and "disconnected" events.
 * positions holds, per room, the position to resume from: save it to resume
 * in another process, and pass it back in as options.positions.
 */
export class ResumingSubscription {
  readonly positions: Map<string, Position>;
  sessionId = "";
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(
    private readonly client: Client<typeof BrokerService>,
    readonly rooms: readonly string[],
    private readonly options: ResumingOptions = {},
  ) {
    this.positions = new Map(options.positions ?? []);
    this.minBackoffMs = options.minBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
  }

  /** The subscription's events, until signal aborts. */
  async *events(signal?: AbortSignal): AsyncGenerator<Event> {
    let backoff = this.minBackoffMs;
    while (!signal?.aborted) {
      // One controller per stream, so that leaving the loop ends the stream.
      const stream = new AbortController();
      const abort = () => stream.abort();
      signal?.addEventListener("abort", abort);
      let code: Code | undefined;
      let message = "the server ended the stream";
      try {
        for await (const ev of this.stream(stream.signal)) {
          backoff = this.minBackoffMs; // connected: start over
          yield ev;
        }
      } catch (e) {
        if (signal?.aborted) {
          return;
        }
        if (e instanceof JoinError) {
          throw e;
        }
        const err = ConnectError.from(e);
        if (!retryable.has(err.code)) {
          throw err;
        }
        code = err.code;
        message = err.rawMessage;
      } finally {
        signal?.removeEventListener("abort", abort);
        stream.abort();
      }
      const retryInMs = Math.round(backoff * (0.5 + Math.random() / 2));
      yield { kind: "disconnected", code, message, retryInMs };
      try {
        await sleep(retryInMs, undefined, { signal });
      } catch {
        return; // aborted
      }
      backoff = Math.min(backoff * 2, this.maxBackoffMs);
    }
  }

  private async *stream(signal: AbortSignal): AsyncGenerator<Event> {
    // The joins go out first; the server answers them after its session event.
    const commands = new Outbox<MessageInitShape<typeof SubscribeRequestSchema>>();
    const joining = new Map<string, { room: string; pos: Position | undefined }>();
    this.rooms.forEach((room, i) => {
      const pos = this.positions.get(room);
      const id = `join-${i}`;
      joining.set(id, { room, pos });
      commands.push({ id, command: { case: "join", value: { room, position: pos } } });
    });
    try {
      const responses = this.client.subscribe(commands, { signal, headers: this.options.headers });
      for await (const resp of responses) {
        switch (resp.event.case) {
          case "session":
            this.sessionId = resp.event.value.sessionId;
            break;
          case "reply": {
            const reply = resp.event.value;
            const join = joining.get(reply.id);
            if (join === undefined) {
              break;
            }
            joining.delete(reply.id);
            const { room, pos } = join;
            if (reply.error !== undefined) {
              throw new JoinError(room, reply.error.code as Code, reply.error.message);
            }
            if (reply.result.case !== "join") {
              break;
            }
            const j = reply.result.value;
            // After a recovered join the messages after pos follow: keep it until they do.
            const offset = pos !== undefined && j.recovered ? pos.offset : j.offset;
            this.positions.set(room, { offset, epoch: j.epoch });
            yield {
              kind: "joined",
              room,
              offset: j.offset,
              epoch: j.epoch,
              resumed: pos !== undefined,
              recovered: j.recovered,
            };
            break;
          }
          case "batch": {
            const batch = resp.event.value;
            for (const m of batch.messages) {
              const epoch = this.positions.get(m.room)?.epoch ?? "";
              this.positions.set(m.room, { offset: m.offset, epoch });
            }
            yield { kind: "batch", batch };
            break;
          }
        }
      }
    } finally {
      commands.close();
    }
  }
}

/** The gRPC name of a code: Code.ResourceExhausted is "RESOURCE_EXHAUSTED". */
export function codeName(code: Code | undefined): string {
  if (code === undefined) {
    return "OK";
  }
  const name = Code[code] as string | undefined;
  return name === undefined ? String(code) : name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** An async iterable of requests that stays open until close(). */
class Outbox<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  push(item: T): void {
    this.items.push(item);
    this.notify();
  }

  close(): void {
    this.closed = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) {
        yield item;
      } else if (this.closed) {
        return;
      } else {
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    }
  }
}
