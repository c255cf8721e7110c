// The BrokerService client the examples share: Connect for Node speaking the
// gRPC protocol over HTTP/2, in plaintext.

import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { BrokerService } from "../../gen/ts/roomcast/v1/broker_pb.js";

/** The server's address: $ROOMCAST_SERVER, or 127.0.0.1:50051. */
export const defaultServer = process.env.ROOMCAST_SERVER || "127.0.0.1:50051";

/** A BrokerService client for a server at host:port. */
export function brokerClient(server: string): Client<typeof BrokerService> {
  const transport = createGrpcTransport({ baseUrl: `http://${server}` });
  return createClient(BrokerService, transport);
}
