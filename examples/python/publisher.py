#!/usr/bin/python3
"""Publishes messages to a room on a roomcast server, in order, and prints
each one's offset and the room's epoch as a JSON line.

usage: publisher.py [--server HOST:PORT] [--token TOKEN] [--tls-ca FILE]
                    [--content-type TYPE] [--header KEY=VALUE]... [--base64]
                    [--stream] ROOM MESSAGE...

Like `roomcast publish`, it makes one attempt per message: when the server
cannot be reached it says so and exits with status 1.

With --stream, it sends them all on one PublishStream without waiting for
each answer, and prints the answers as they come, in the same order; a
message the server refuses gets a JSON line with its error, the others go
on, and the exit status is 1.
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


# gRPC code numbers to names, for the errors of a PublishStream's answers.
CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


def print_published(offset, epoch):
    print(json.dumps({"offset": str(offset), "epoch": epoch}, separators=(",", ":")), flush=True)


def publish_stream(stub, reqs, metadata):
    """Sends reqs on one PublishStream, pipelined (grpcio sends from its own
    thread while this one reads the answers), and prints each answer.
    Returns how many messages were refused."""

    def requests():
        for i, req in enumerate(reqs):
            yield broker_pb2.PublishStreamRequest(id=str(i), publish=req)

    refused = 0
    for resp in stub.PublishStream(requests(), timeout=30, metadata=metadata):
        if resp.WhichOneof("result") == "ok":
            print_published(resp.ok.offset, resp.ok.epoch)
        else:
            refused += 1
            err = {"code": CODE_NAMES.get(resp.error.code, str(resp.error.code)), "message": resp.error.message}
            print(json.dumps({"id": resp.id, "error": err}, separators=(",", ":")), flush=True)
    return refused


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
    p.add_argument("--stream", action="store_true", help="publish on one PublishStream, pipelined")
    p.add_argument("room", metavar="ROOM")
    p.add_argument("messages", nargs="+", metavar="MESSAGE")
    args = p.parse_args()
    roomcast_connect.check(p, args)

    reqs = []
    for msg in args.messages:
        req = broker_pb2.PublishRequest(room=args.room, content_type=args.content_type, headers=dict(args.header))
        if args.base64:
            req.data = base64.b64decode(msg, validate=True)
        else:
            req.text = msg
        reqs.append(req)

    with roomcast_connect.channel(args) as channel:
        stub = broker_pb2_grpc.BrokerServiceStub(channel)
        if args.stream:
            try:
                refused = publish_stream(stub, reqs, roomcast_connect.metadata(args))
            except grpc.RpcError as e:
                sys.exit(f"publisher: {roomcast_connect.describe(e.code(), e.details() or '', args.server)}")
            sys.exit(1 if refused else 0)
        for req in reqs:
            try:
                resp = stub.Publish(req, timeout=10, metadata=roomcast_connect.metadata(args))
            except grpc.RpcError as e:
                sys.exit(f"publisher: {roomcast_connect.describe(e.code(), e.details() or '', args.server)}")
            print_published(resp.offset, resp.epoch)


if __name__ == "__main__":
    main()
