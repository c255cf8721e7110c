#!/usr/bin/python3
"""Subscribes to rooms on a roomcast server and prints what arrives, one
JSON object a line, until interrupted. It reconnects and resumes after a
disconnect (see roomcast_resume.py).

usage: subscriber.py [--server HOST:PORT] [--token TOKEN] [--tls-ca FILE] ROOM...

Like `roomcast subscribe`, it waits for a server that is down, saying so on
stderr at every attempt.
"""

import argparse
import asyncio
import json
import signal
import sys

import _gen_path  # noqa: F401  (puts gen/python on sys.path)

import grpc
from google.protobuf import json_format

from roomcast.v1 import broker_pb2_grpc
import roomcast_connect
from roomcast_resume import Disconnected, JoinError, Joined, ResumingSubscription


def emit(obj):
    print(json.dumps(obj, separators=(",", ":")), flush=True)


async def run(args):
    async with roomcast_connect.aio_channel(args) as channel:
        sub = ResumingSubscription(
            broker_pb2_grpc.BrokerServiceStub(channel), args.rooms, metadata=roomcast_connect.metadata(args)
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, sub.close)
        async for ev in sub.events():
            if isinstance(ev, Joined):
                emit(
                    {
                        "event": "joined",
                        "room": ev.room,
                        "offset": str(ev.offset),
                        "epoch": ev.epoch,
                        "resumed": ev.resumed,
                        "recovered": ev.recovered,
                    }
                )
                if ev.resumed and not ev.recovered:
                    print(
                        f"subscriber: {ev.room}: messages after the last one received are lost; "
                        f"going on from offset {ev.offset}",
                        file=sys.stderr,
                        flush=True,
                    )
            elif isinstance(ev, Disconnected):
                print(
                    f"subscriber: {roomcast_connect.describe(ev.code, ev.details, args.server)}; "
                    f"retrying in {ev.retry_in:.1f}s",
                    file=sys.stderr,
                    flush=True,
                )
                emit(
                    {
                        "event": "disconnected",
                        "code": ev.code.name,
                        "message": ev.details,
                        "retryIn": round(ev.retry_in, 3),
                    }
                )
            else:  # a MessageBatch: one streamed response
                for m in ev.messages:
                    emit(
                        {
                            "event": "message",
                            "batch": len(ev.messages),
                            "message": json_format.MessageToDict(m),
                        }
                    )


def main():
    p = argparse.ArgumentParser(description="Print the messages of roomcast rooms as JSON lines.")
    roomcast_connect.add_arguments(p)
    p.add_argument("rooms", nargs="+", metavar="ROOM")
    args = p.parse_args()
    roomcast_connect.check(p, args)

    try:
        asyncio.run(run(args))
    except JoinError as e:
        sys.exit(f"subscriber: {e}")
    except grpc.aio.AioRpcError as e:
        sys.exit(f"subscriber: {roomcast_connect.describe(e.code(), e.details() or '', args.server)}")


if __name__ == "__main__":
    main()
