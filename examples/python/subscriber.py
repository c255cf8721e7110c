#!/usr/bin/python3
"""Subscribes to rooms on a roomcast server and prints what arrives, one
JSON object a line, until interrupted. It reconnects and resumes after a
disconnect (see roomcast_resume.py).

usage: subscriber.py [--server HOST:PORT] ROOM...
"""

import argparse
import asyncio
import json
import os
import signal
import sys

import _gen_path  # noqa: F401  (puts gen/python on sys.path)

import grpc
from google.protobuf import json_format

from roomcast.v1 import broker_pb2_grpc
from roomcast_resume import Disconnected, JoinError, Joined, ResumingSubscription


def emit(obj):
    print(json.dumps(obj, separators=(",", ":")), flush=True)


async def run(server, rooms):
    async with grpc.aio.insecure_channel(server) as channel:
        sub = ResumingSubscription(broker_pb2_grpc.BrokerServiceStub(channel), rooms)
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
    p.add_argument(
        "--server",
        default=os.environ.get("ROOMCAST_SERVER", "127.0.0.1:50051"),
        help="the server's address (default: $ROOMCAST_SERVER or 127.0.0.1:50051)",
    )
    p.add_argument("rooms", nargs="+", metavar="ROOM")
    args = p.parse_args()

    try:
        asyncio.run(run(args.server, args.rooms))
    except JoinError as e:
        sys.exit(f"subscriber: {e}")
    except grpc.aio.AioRpcError as e:
        sys.exit(f"subscriber: {e.code().name}: {e.details()}")


if __name__ == "__main__":
    main()
