"""The connection options the examples share, as the Go CLI takes them: the
server's address, a bearer token, and TLS with a private CA.

    --server HOST:PORT    $ROOMCAST_SERVER, else 127.0.0.1:50051
    --token TOKEN         $ROOMCAST_TOKEN: a JWT or an API key
    --tls-ca FILE         $ROOMCAST_TLS_CA: connect with TLS, trusting this PEM CA
    --tls-server-name N   $ROOMCAST_TLS_SERVER_NAME: the name the server's certificate has
    --insecure-plaintext-token   send the token without TLS beyond loopback

Like the Go CLI, it refuses to send a token in plaintext to a server that is
not on this machine, where anyone on the network could read it.
"""

import argparse
import ipaddress
import os
from typing import Tuple

import grpc

# Reconnect quickly once a server that was down is back: grpc's own backoff
# grows to two minutes, and a call made meanwhile fails at once. Not
# grpc.min_reconnect_backoff_ms: grpc also gives each connection attempt
# that long, at least, and at 100 ms a slower handshake (a far server's
# TLS, a loaded machine) failed the call.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Adds the connection options to p."""
    env = os.environ.get
    p.add_argument(
        "--server",
        default=env("ROOMCAST_SERVER") or "127.0.0.1:50051",
        help="the server's address (default: $ROOMCAST_SERVER or 127.0.0.1:50051)",
    )
    p.add_argument(
        "--token",
        default=env("ROOMCAST_TOKEN", ""),
        help="a JWT or API key sent as the bearer credential (default: $ROOMCAST_TOKEN)",
    )
    p.add_argument(
        "--tls-ca",
        default=env("ROOMCAST_TLS_CA", ""),
        metavar="FILE",
        help="connect with TLS, trusting the CA certificates in this PEM file (default: $ROOMCAST_TLS_CA; plaintext without it)",
    )
    p.add_argument(
        "--tls-server-name",
        default=env("ROOMCAST_TLS_SERVER_NAME", ""),
        metavar="NAME",
        help="the name in the server's certificate, when it is not the host of --server",
    )
    p.add_argument(
        "--insecure-plaintext-token",
        action="store_true",
        default=env("ROOMCAST_INSECURE_PLAINTEXT_TOKEN", "") == "true",
        help="send the token without TLS to a server that is not loopback",
    )


def check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses, as a usage error, options that do not make sense together."""
    if args.tls_server_name and not args.tls_ca:
        p.error("--tls-server-name needs --tls-ca: without it the connection is plaintext")
    if args.token and not args.tls_ca and not args.insecure_plaintext_token and not is_loopback(args.server):
        p.error(
            f"refusing to send the token in plaintext to {args.server}, which is not a loopback address: "
            "connect with TLS (--tls-ca FILE), or on a network you trust add --insecure-plaintext-token"
        )


def is_loopback(server: str) -> bool:
    """Whether the host of server (HOST:PORT) is on this machine."""
    host = server.rsplit(":", 1)[0].strip("[]")
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _credentials(args: argparse.Namespace) -> Tuple[grpc.ChannelCredentials, list]:
    with open(args.tls_ca, "rb") as f:
        ca = f.read()
    options = list(CHANNEL_OPTIONS)
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    return grpc.ssl_channel_credentials(root_certificates=ca), options


def channel(args: argparse.Namespace) -> grpc.Channel:
    """A blocking channel to args.server, with TLS when args.tls_ca is set."""
    if args.tls_ca:
        creds, options = _credentials(args)
        return grpc.secure_channel(args.server, creds, options=options)
    return grpc.insecure_channel(args.server, options=CHANNEL_OPTIONS)


def aio_channel(args: argparse.Namespace) -> grpc.aio.Channel:
    """An asyncio channel to args.server, with TLS when args.tls_ca is set."""
    if args.tls_ca:
        creds, options = _credentials(args)
        return grpc.aio.secure_channel(args.server, creds, options=options)
    return grpc.aio.insecure_channel(args.server, options=CHANNEL_OPTIONS)


def metadata(args: argparse.Namespace) -> Tuple[Tuple[str, str], ...]:
    """The metadata every call carries: the bearer token, if any."""
    if not args.token:
        return ()
    return (("authorization", f"Bearer {args.token}"),)


def describe(code: grpc.StatusCode, details: str, server: str) -> str:
    """An error of a call, in words; for a server that cannot be reached, with
    what to check."""
    if code == grpc.StatusCode.UNAVAILABLE:
        if "refused" in details.lower():
            return f"cannot reach {server}: connection refused — is `roomcast serve` running?"
        return f"{server} is unavailable: {details}"
    return f"{code.name}: {details}"
