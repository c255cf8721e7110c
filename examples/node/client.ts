// The BrokerService client the examples share: Connect for Node speaking the
// gRPC protocol over HTTP/2, in plaintext or, with a CA file, over TLS; and
// the connection options they take, as the Go CLI takes them:
//
//   --server HOST:PORT   $ROOMCAST_SERVER, else 127.0.0.1:50051
//   --token TOKEN        $ROOMCAST_TOKEN: a JWT or an API key
//   --tls-ca FILE        $ROOMCAST_TLS_CA: connect with TLS, trusting this PEM CA
//   --tls-server-name N  $ROOMCAST_TLS_SERVER_NAME: the name the server's certificate has
//   --insecure-plaintext-token  send the token without TLS beyond loopback
//
// Like the Go CLI, it refuses to send a token in plaintext to a server that
// is not on this machine, where anyone on the network could read it.

import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { type Client, Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { BrokerService } from "../../gen/ts/roomcast/v1/broker_pb.js";
import { codeName } from "./resume.js";

/** The server's address: $ROOMCAST_SERVER, or 127.0.0.1:50051. */
export const defaultServer = process.env.ROOMCAST_SERVER || "127.0.0.1:50051";

/** How to reach the server and what to present to it. */
export interface ConnectOptions {
  /** A JWT or API key, sent as "authorization: Bearer <token>". */
  token?: string;
  /** A PEM file of the CA certificates to trust; TLS when set. */
  tlsCA?: string;
  /** The name in the server's certificate, when not the host of server. */
  tlsServerName?: string;
}

/** The options of parseArgs for the connection, with their defaults. */
export const connectArgs = {
  server: { type: "string", default: defaultServer },
  token: { type: "string", default: process.env.ROOMCAST_TOKEN ?? "" },
  "tls-ca": { type: "string", default: process.env.ROOMCAST_TLS_CA ?? "" },
  "tls-server-name": { type: "string", default: process.env.ROOMCAST_TLS_SERVER_NAME ?? "" },
  "insecure-plaintext-token": { type: "boolean", default: process.env.ROOMCAST_INSECURE_PLAINTEXT_TOKEN === "true" },
} as const;

/** The values parseArgs gives for connectArgs. */
export interface ConnectValues {
  server: string;
  token: string;
  "tls-ca": string;
  "tls-server-name": string;
  "insecure-plaintext-token": boolean;
}

/**
 * The problem with the connection options, as a usage error, or undefined
 * when they make sense together.
 */
export function checkConnectArgs(v: ConnectValues): string | undefined {
  if (v["tls-server-name"] && !v["tls-ca"]) {
    return "--tls-server-name needs --tls-ca: without it the connection is plaintext";
  }
  if (v.token && !v["tls-ca"] && !v["insecure-plaintext-token"] && !isLoopback(v.server)) {
    return (
      `refusing to send the token in plaintext to ${v.server}, which is not a loopback address: ` +
      "connect with TLS (--tls-ca FILE), or on a network you trust add --insecure-plaintext-token"
    );
  }
  return undefined;
}

/** Whether the host of server (HOST:PORT) is on this machine. */
export function isLoopback(server: string): boolean {
  const host = server.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  if (host.toLowerCase().replace(/\.$/, "") === "localhost") {
    return true;
  }
  switch (isIP(host)) {
    case 4:
      return host.startsWith("127.");
    case 6:
      return host === "::1" || /^::ffff:127\./i.test(host);
  }
  return false;
}

/** A BrokerService client for a server at host:port. */
export function brokerClient(server: string, options: ConnectOptions = {}): Client<typeof BrokerService> {
  const interceptors: Interceptor[] = [];
  const token = options.token;
  if (token) {
    interceptors.push((next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    });
  }
  if (!options.tlsCA) {
    return createClient(BrokerService, createGrpcTransport({ baseUrl: `http://${server}`, interceptors }));
  }
  const transport = createGrpcTransport({
    baseUrl: `https://${server}`,
    interceptors,
    nodeOptions: { ca: readFileSync(options.tlsCA), servername: options.tlsServerName || undefined },
  });
  return createClient(BrokerService, transport);
}

/** The client of the connection options parseArgs gave. */
export function clientOf(v: ConnectValues): Client<typeof BrokerService> {
  return brokerClient(v.server, { token: v.token, tlsCA: v["tls-ca"], tlsServerName: v["tls-server-name"] });
}

/** An error of a call, in words; for a server that cannot be reached, with what to check. */
export function describe(code: Code | undefined, message: string, server: string): string {
  if (code === Code.Unavailable) {
    if (/ECONNREFUSED|refused/i.test(message)) {
      return `cannot reach ${server}: connection refused — is \`roomcast serve\` running?`;
    }
    return `${server} is unavailable: ${message}`;
  }
  return `${codeName(code)}: ${message}`;
}

/** describe for any error a call threw. */
export function describeError(e: unknown, server: string): string {
  const err = ConnectError.from(e);
  return describe(err.code, err.rawMessage, server);
}
