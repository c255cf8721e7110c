// Watch that outlives its calls: a DOM-free loop that keeps one Watch call
// open, and when it ends (the server restarts, the network drops) opens a
// new one after a backoff, naming each room with the last position it saw.
// The server then replays what was missed (recovered: true), or says it
// cannot (recovered: false) and the caller is told which offsets it missed.

import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { BrokerService, type Message } from "../../gen/ts/roomcast/v1/broker_pb.js";

/** The last message seen in a room: its offset and the room's epoch. */
export interface Position {
  offset: bigint;
  epoch: string;
}

/** What the server could not replay on a resume: recovered was false. */
export interface Gap {
  room: string;
  /** The position the call resumed from. */
  after: Position;
  /** The room's epoch now; offsets of another epoch are another sequence. */
  epoch: string;
  /**
   * The offsets missed in epoch, first to last (first > last: none). In
   * the same epoch, after.offset+1 to the room's offset; in a new epoch
   * (the server lost the room's history), 1 to the room's offset, and
   * whatever followed after.offset in the old epoch is lost too.
   */
  first: bigint;
  last: bigint;
}

export type WatchEvent =
  | { kind: "connected"; sessionId: string }
  | { kind: "joined"; room: string; offset: bigint; epoch: string; resumed: boolean; recovered: boolean }
  | { kind: "gap"; gap: Gap }
  | { kind: "messages"; messages: Message[] }
  | { kind: "disconnected"; code: Code | undefined; message: string; retryInMs: number };

/**
 * Endings that a new call can fix; any other (Unauthenticated,
 * PermissionDenied, InvalidArgument, ...) is thrown.
 */
const transient: ReadonlySet<Code> = new Set([
  Code.Unavailable,
  Code.Unknown, // a browser's fetch reports a dropped connection as a plain TypeError
  Code.Canceled,
  Code.Internal,
  Code.ResourceExhausted, // cut off as a slow consumer: resume where it stopped
  Code.Aborted,
  Code.DeadlineExceeded,
]);

/** A room the server refused: a new call would be refused too. */
export class RoomError extends Error {
  constructor(
    readonly room: string,
    readonly code: Code,
    reason: string,
  ) {
    super(`${room}: ${Code[code] ?? code}: ${reason}`);
    this.name = "RoomError";
  }
}

export interface WatcherOptions {
  /** The first backoff after a call ends; it doubles up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Watcher keeps the rooms watched and their positions. It is used from one
 * task: iterate over events() once.
 */
export class Watcher {
  /** The last position per room: where the next call resumes from. */
  readonly positions = new Map<string, Position>();
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(
    private readonly client: Client<typeof BrokerService>,
    readonly rooms: readonly string[],
    options: WatcherOptions = {},
  ) {
    this.minBackoffMs = options.minBackoffMs ?? 250;
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
  }

  /** The events of every call, until signal aborts or an error that no new call fixes. */
  async *events(signal: AbortSignal): AsyncGenerator<WatchEvent> {
    let backoff = this.minBackoffMs;
    while (!signal.aborted) {
      let code: Code | undefined;
      let message = "the server ended the call";
      try {
        for await (const ev of this.call(signal)) {
          backoff = this.minBackoffMs;
          yield ev;
        }
      } catch (e) {
        if (signal.aborted) {
          return;
        }
        if (e instanceof RoomError) {
          throw e;
        }
        const err = ConnectError.from(e);
        if (!transient.has(err.code)) {
          throw err;
        }
        code = err.code;
        message = err.rawMessage;
      }
      const retryInMs = Math.round(backoff * (0.5 + Math.random() / 2));
      yield { kind: "disconnected", code, message, retryInMs };
      if (!(await pause(retryInMs, signal))) {
        return;
      }
      backoff = Math.min(2 * backoff, this.maxBackoffMs);
    }
  }

  private async *call(signal: AbortSignal): AsyncGenerator<WatchEvent> {
    const from = new Map(this.positions);
    const rooms = this.rooms.map((room) => ({ room, position: from.get(room) }));
    const call = this.client.watch({ rooms }, { signal });
    for await (const resp of call) {
      const ev = resp.event;
      if (ev.case === "session") {
        yield { kind: "connected", sessionId: ev.value.sessionId };
      } else if (ev.case === "reply") {
        const room = ev.value.id;
        if (ev.value.error !== undefined) {
          throw new RoomError(room, ev.value.error.code as Code, ev.value.error.message);
        }
        if (ev.value.result.case !== "join") {
          continue;
        }
        const j = ev.value.result.value;
        const after = from.get(room);
        yield { kind: "joined", room, offset: j.offset, epoch: j.epoch, resumed: after !== undefined, recovered: j.recovered };
        if (after !== undefined && j.recovered) {
          // The messages after it follow: keep it until they come.
          this.positions.set(room, { offset: after.offset, epoch: j.epoch });
          continue;
        }
        this.positions.set(room, { offset: j.offset, epoch: j.epoch });
        if (after !== undefined) {
          const first = after.epoch === j.epoch ? after.offset + 1n : 1n;
          yield { kind: "gap", gap: { room, after, epoch: j.epoch, first, last: j.offset } };
        }
      } else if (ev.case === "batch") {
        for (const m of ev.value.messages) {
          const epoch = this.positions.get(m.room)?.epoch ?? "";
          this.positions.set(m.room, { offset: m.offset, epoch });
        }
        yield { kind: "messages", messages: ev.value.messages };
      }
    }
  }
}

/** Waits ms, or less if signal aborts; says whether it waited it all. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (waited: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", aborted);
      resolve(waited);
    };
    const aborted = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener("abort", aborted);
  });
}
