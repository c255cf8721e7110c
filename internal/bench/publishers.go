package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/roomcast/roomcast/client"
)

// clientPublishers are a trial's roomcast publishers, on the client package:
// a client.Client each, on a connection of its own to its node, publishing
// with Client.Publish (PublishUnary) or on a client.Publisher
// (PublishStream) with PublishAsync (see asyncPublisher). Its methods are
// called by the worker's goroutine, but for the publish functions, which
// are safe for concurrent use.
type clientPublishers struct {
	w       *worker
	clients []*client.Client
	streams []*client.Publisher // PublishStream only
	async   []*asyncPublisher   // PublishStream only: streams', one each
}

// clientOptions are the options of every client.Client of a trial: a fixed
// HTTP/2 window when the spec asks for one.
func clientOptions(s spec) []client.Option {
	if n := s.StreamWindow; n > 0 {
		return []client.Option{client.WithDialOptions(grpc.WithInitialWindowSize(int32(n)), grpc.WithInitialConnWindowSize(int32(16*n)))}
	}
	return nil
}

// dialClient returns a client of addr, connected: the client package
// connects on the first call, so it opens a Subscribe stream with no room
// and closes it.
func dialClient(ctx context.Context, addr string, opts []client.Option) (*client.Client, error) {
	c, err := client.Dial(addr, opts...)
	if err != nil {
		return nil, err
	}
	sub, err := c.Subscribe(ctx)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	sub.Close()
	return c, nil
}

func (p *clientPublishers) connect(ctx context.Context) error {
	opts := clientOptions(p.w.spec)
	for i := range p.w.spec.Publishers {
		c, err := dialClient(ctx, p.w.spec.Addrs[p.w.pubNodes[i]], opts)
		if err != nil {
			return err
		}
		p.clients = append(p.clients, c)
		if p.w.spec.Publish != PublishStream {
			continue
		}
		// Bounded by close, not by the setup's ctx.
		pub, err := c.NewPublisher(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
		p.streams = append(p.streams, pub)
		p.async = append(p.async, newAsyncPublisher(p.w, i, pub))
	}
	return nil
}

// publisher returns publisher i's publish function and how many calls of
// it may be in flight at once: a streaming publisher's one lane queues its
// messages, publishLanes(PublishStream) in flight.
func (p *clientPublishers) publisher(i int) (publishFunc, int) {
	if p.w.spec.Publish == PublishStream {
		return p.async[i].publish, 1
	}
	c := p.clients[i]
	return func(ctx context.Context, r *room, payload []byte) error {
		ctx, cancel := context.WithTimeout(ctx, publishTimeout)
		defer cancel()
		_, err := c.Publish(ctx, r.name, payload)
		return err
	}, publishLanes(PublishUnary)
}

// close closes every publisher and client.
func (p *clientPublishers) close() {
	for _, a := range p.async {
		a.close()
	}
	for _, s := range p.streams {
		s.Close()
	}
	for _, c := range p.clients {
		c.Close()
	}
	p.async, p.streams, p.clients = nil, nil, nil
}

// subscribeAll runs join for every subscriber, subscribeParallel at once,
// and returns every error. cancel ends the subscribers' streams: it is
// called when ctx ends or joining takes longer than joinTimeout, so
// that a server that never answers does not hold the worker forever.
func subscribeAll(ctx context.Context, subs []*subscriber, cancel context.CancelFunc, join func(*subscriber) error) error {
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	timeout := time.AfterFunc(joinTimeout(len(subs)), cancel)
	defer timeout.Stop()

	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, subscribeParallel)
	var wg sync.WaitGroup
	for _, s := range subs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := join(s); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("subscriber %d (%s): %w", s.id, s.room.name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
