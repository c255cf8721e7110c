package childproc

import (
	"errors"
	"net"
)

// A Server is what ServeLoopback serves; *server.Server is one.
type Server interface {
	Serve(lis net.Listener) error
	Close() error
}

// ServeLoopback serves srv on a loopback port while it calls meanwhile
// with the port's address (to tell the parent, and then to wait for its
// cue), then closes srv; it returns meanwhile's error and Serve's.
func ServeLoopback(srv Server, meanwhile func(addr net.Addr) error) error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	err = meanwhile(lis.Addr())
	srv.Close()
	return errors.Join(err, <-served)
}
