#!/usr/bin/python3
"""Publishes messages to a room on a roomcast server, in order, and prints
each one's offset and the room's epoch as a JSON line.

usage: publisher.py [--server HOST:PORT] [--token TOKEN] [--tls-ca FILE]
                    [--content-type TYPE] [--header KEY=VALUE]... [--base64]
                    ROOM MESSAGE...

Like `roomcast publish`, it makes one attempt per message: when the server
cannot be reached it says so and exits with status 1.
"""

import argparse
import base64
import json
import sys

import _gen_path  # noqa: F401  (puts gen/python on sys.path)

import grpc

from roomcast.v1 import broker_pb2, broker_pb2_grpc
import roomcast_connect


def header(s):
    key, sep, value = s.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{s!r} is not KEY=VALUE")
    return key, value


def main():
    p = argparse.ArgumentParser(description="Publish messages to a roomcast room.")
    roomcast_connect.add_arguments(p)
    p.add_argument("--content-type", default="", help="the messages' content type")
    p.add_argument(
        "--header", type=header, action="append", default=[], metavar="KEY=VALUE", help="a header (repeatable)"
    )
    p.add_argument(
        "--base64",
        action="store_true",
        help="each MESSAGE is base64, published as bytes (data) rather than text",
    )
    p.add_argument("room", metavar="ROOM")
    p.add_argument("messages", nargs="+", metavar="MESSAGE")
    args = p.parse_args()
    roomcast_connect.check(p, args)

    with roomcast_connect.channel(args) as channel:
        stub = broker_pb2_grpc.BrokerServiceStub(channel)
        for msg in args.messages:
            req = broker_pb2.PublishRequest(
                room=args.room, content_type=args.content_type, headers=dict(args.header)
            )
            if args.base64:
                req.data = base64.b64decode(msg, validate=True)
            else:
                req.text = msg
            try:
                resp = stub.Publish(req, timeout=10, metadata=roomcast_connect.metadata(args))
            except grpc.RpcError as e:
                sys.exit(f"publisher: {roomcast_connect.describe(e.code(), e.details() or '', args.server)}")
            print(json.dumps({"offset": str(resp.offset), "epoch": resp.epoch}, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
