package server_test

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/roomcast/roomcast/internal/rawh2"
)

// dialRaw opens an HTTP/2 connection to addr driven by hand
// (internal/rawh2), for calls no gRPC client would make. It is closed when
// the test ends.
func dialRaw(t testing.TB, addr string) *rawh2.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rawh2.New(conn)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		<-c.Done()
	})
	return c
}

// rawCall opens a stream on c for a gRPC call to method with the extra
// header fields, ending it with the headers if endStream, and sends it. The
// error is the server's closing the connection under it.
func rawCall(c *rawh2.Conn, method string, extra []hpack.HeaderField, endStream bool) (uint32, error) {
	id, err := c.Open(c.Encode(rawh2.GRPCHeaders("roomcast.test", method, extra...)), endStream)
	if err == nil {
		err = c.Flush()
	}
	return id, err
}

// rawRequest sends msg as the request of stream id, and ends the stream.
func rawRequest(c *rawh2.Conn, id uint32, msg []byte) error {
	if err := c.Data(id, msg, true); err != nil {
		return err
	}
	return c.Flush()
}

// closedBy reports whether the server closed c before ctx ended, and
// whether it sent a GOAWAY first.
func closedBy(ctx context.Context, c *rawh2.Conn) (closed, goaway bool) {
	end, err := c.Wait(ctx)
	return err == nil, end.GoAway != nil
}
