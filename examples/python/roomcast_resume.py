"""A Subscribe stream that survives disconnects.

ResumingSubscription keeps one Subscribe stream open to a roomcast server.
When the stream ends (the server shuts down, the connection drops, or the
server cuts a slow consumer off), it reconnects and joins every room again
with JoinCommand.position set to the last message it delivered, so the server
replays what was missed. When the server cannot (the room's history no
longer holds it all, or the server restarted and the room's epoch changed),
the join reply says recovered=False: that is passed on to the caller as a
Joined event with resumed=True and recovered=False, and the caller has a
gap to fill from its own source of truth.

It uses only the code generated from proto/ (gen/python) and grpcio.
"""

import asyncio
import dataclasses
import random
from typing import AsyncIterator, Dict, Iterable, Optional, Sequence, Tuple, Union

import grpc

from roomcast.v1 import broker_pb2, broker_pb2_grpc


@dataclasses.dataclass(frozen=True)
class Position:
    """The last message a subscriber has in a room: its offset and the
    room's epoch."""

    offset: int
    epoch: str


@dataclasses.dataclass(frozen=True)
class Joined:
    """The reply to a join. resumed: the join carried a position (a rejoin
    after a disconnect, or a start position given by the caller). recovered:
    with resumed, whether every message after that position follows; False
    means they are lost and the subscription goes on from offset."""

    room: str
    offset: int
    epoch: str
    resumed: bool
    recovered: bool


@dataclasses.dataclass(frozen=True)
class Disconnected:
    """The stream ended; the subscription reconnects after retry_in seconds."""

    code: grpc.StatusCode
    details: str
    retry_in: float


Event = Union[Joined, broker_pb2.MessageBatch, Disconnected]


class JoinError(Exception):
    """The server refused a join (a bad room name, no grant, a position past
    the room's newest offset, ...). Reconnecting would not help."""

    def __init__(self, room: str, code: int, message: str):
        super().__init__(f"join {room}: {grpc_code_name(code)}: {message}")
        self.room = room
        self.code = code
        self.message = message


# Stream endings that a new stream can fix. Anything else (UNAUTHENTICATED,
# PERMISSION_DENIED, INVALID_ARGUMENT, UNIMPLEMENTED, ...) is raised.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,  # server shutting down, connection lost
        grpc.StatusCode.CANCELLED,  # the stream was reset (our own cancellation is asyncio's)
        grpc.StatusCode.RESOURCE_EXHAUSTED,  # cut off as a slow consumer
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)


class ResumingSubscription:
    """Subscribes to rooms and stays subscribed, resuming after disconnects.

    Iterate over events() for Joined, MessageBatch and Disconnected events,
    until close().
    positions holds, per room, the position to resume from: save it to
    resume in another process, and pass it back in as positions=.
    """

    def __init__(
        self,
        stub: broker_pb2_grpc.BrokerServiceStub,
        rooms: Sequence[str],
        positions: Optional[Dict[str, Position]] = None,
        metadata: Optional[Iterable[Tuple[str, str]]] = None,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ):
        self.stub = stub
        self.rooms = list(rooms)
        self.positions: Dict[str, Position] = dict(positions or {})
        self.metadata = tuple(metadata or ())
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.session_id = ""
        self._closed = asyncio.Event()
        self._call = None

    async def events(self) -> AsyncIterator[Event]:
        """The subscription's events, until close()."""
        backoff = self.min_backoff
        while not self._closed.is_set():
            # Not wait_for_ready: a server that is down fails the call, and
            # the caller hears of it (a Disconnected event) at every attempt
            # rather than waiting in silence.
            call = self.stub.Subscribe(metadata=self.metadata)
            self._call = call
            try:
                async for event in self._stream(call):
                    backoff = self.min_backoff  # connected: start over
                    yield event
                code, details = grpc.StatusCode.OK, "the server ended the stream"
            except (grpc.aio.AioRpcError, asyncio.CancelledError) as e:
                if self._closed.is_set():
                    return  # close() cancelled the call
                if not isinstance(e, grpc.aio.AioRpcError) or e.code() not in RETRYABLE:
                    raise
                code, details = e.code(), e.details() or ""
            finally:
                self._call = None
                call.cancel()
            retry_in = backoff * (0.5 + random.random() / 2)
            yield Disconnected(code, details, retry_in)
            try:
                await asyncio.wait_for(self._closed.wait(), retry_in)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, self.max_backoff)

    def close(self) -> None:
        """Ends events(), now: cancels the stream, and opens no other. Safe to
        call from a signal handler of the event loop (loop.add_signal_handler).

        Prefer it to cancelling the task that iterates over events(): grpc.aio
        can lose a task's cancellation while a call waits for a connection."""
        self._closed.set()
        if self._call is not None:
            self._call.cancel()

    async def _stream(self, call) -> AsyncIterator[Event]:
        first = await call.read()
        if first is grpc.aio.EOF:
            return
        self.session_id = first.session.session_id
        joining: Dict[str, Tuple[str, Optional[Position]]] = {}
        for i, room in enumerate(self.rooms):
            join = broker_pb2.JoinCommand(room=room)
            pos = self.positions.get(room)
            if pos is not None:
                join.position.offset = pos.offset
                join.position.epoch = pos.epoch
            cmd_id = f"join-{i}"
            joining[cmd_id] = (room, pos)
            await call.write(broker_pb2.SubscribeRequest(id=cmd_id, join=join))
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                return
            kind = resp.WhichOneof("event")
            if kind == "reply":
                room, pos = joining.pop(resp.reply.id)
                if resp.reply.HasField("error"):
                    raise JoinError(room, resp.reply.error.code, resp.reply.error.message)
                j = resp.reply.join
                if pos is not None and j.recovered:
                    # The messages after pos follow: keep it until they do.
                    self.positions[room] = Position(pos.offset, j.epoch)
                else:
                    self.positions[room] = Position(j.offset, j.epoch)
                yield Joined(room, j.offset, j.epoch, pos is not None, j.recovered)
            elif kind == "batch":
                for m in resp.batch.messages:
                    epoch = self.positions[m.room].epoch
                    self.positions[m.room] = Position(m.offset, epoch)
                yield resp.batch


def grpc_code_name(code: int) -> str:
    for c in grpc.StatusCode:
        if c.value[0] == code:
            return c.name
    return str(code)
