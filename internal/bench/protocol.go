package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"
)

// The parent drives the worker with one request per line on the worker's
// stdin and reads one reply per request on its stdout, in order:
//
//	setup     connect the publishers' and subscribers' connections
//	subscribe open every subscriber stream and join its room
//	start     start publishing
//	snap      report the counters; Measure starts or stops recording latency
//	stop      stop publishing, wait until every subscriber has everything
//	          published, close every connection, and report what the
//	          subscribers found
//
// The worker exits when its stdin ends.
// A reply with Error set means the request failed and the trial is over.

// Worker operations.
const (
	opSetup     = "setup"
	opSubscribe = "subscribe"
	opStart     = "start"
	opSnap      = "snap"
	opStop      = "stop"
)

// request is one line the parent sends.
type request struct {
	Op      string `json:"op"`
	Spec    *spec  `json:"spec,omitempty"`    // for setup
	Measure *bool  `json:"measure,omitempty"` // for snap: start or stop recording latencies
	// Profile, for a snap that starts recording, is a file to write a CPU
	// profile of the worker process to until recording stops; "" for none.
	Profile string `json:"profile,omitempty"`
}

// spec is one trial, as the worker runs it.
type spec struct {
	Variant string   `json:"variant"`
	Addrs   []string `json:"addrs"` // the server's nodes: host:port, or a NATS URL
	// WebAddrs are the nodes' web listeners, for VariantWatch's subscribers.
	WebAddrs []string `json:"web_addrs,omitempty"`
	// PublishNode is the index in Addrs of the node every publisher
	// publishes to, or -1: publisher p to node p modulo len(Addrs).
	// Subscriber connection i goes to node i modulo len(Addrs).
	PublishNode int     `json:"publish_node"`
	Prefix      string  `json:"prefix"` // room names start with it
	Subscribers int     `json:"subscribers"`
	Connections int     `json:"connections"`
	Rooms       int     `json:"rooms"`
	Publishers  int     `json:"publishers"`
	Payload     int     `json:"payload"`
	Rate        float64 `json:"rate"` // messages per second over all publishers; 0 for saturation
	Window      int     `json:"window"`
	// StreamWindow is Config.StreamWindow.
	StreamWindow int `json:"stream_window,omitempty"`
	// Publish is how roomcast publishers publish: PublishUnary or
	// PublishStream; "" for NATS.
	Publish string `json:"publish,omitempty"`
	// FlushEvery, for NATS, is how many publishes a publisher makes
	// between flushes (a round trip to the server); 0 for none.
	FlushEvery int           `json:"flush_every,omitempty"`
	Drain      time.Duration `json:"drain"` // how long stop waits for subscribers to get everything
}

// reply is one line the worker sends.
type reply struct {
	Op        string        `json:"op"`
	Error     string        `json:"error,omitempty"`
	Failures  []string      `json:"failures,omitempty"` // what subscribers and publishers found wrong, so far
	Failed    int           `json:"failed,omitempty"`   // how many failures, including those left out of Failures
	Published uint64        `json:"published"`          // messages published so far
	Delivered uint64        `json:"delivered"`          // messages subscribers received so far
	Frames    uint64        `json:"frames"`             // responses (roomcast) or messages (NATS) that carried them
	CPUNanos  int64         `json:"cpu_ns"`             // the worker process's CPU time so far; -1 if unknown
	Latency   *LatencyStats `json:"latency,omitempty"`  // for stop: over the measurement window
	Runtime   *RuntimeStats `json:"runtime,omitempty"`  // for the snap that stops measuring: over the window
	// CrossNode and SameNode split Latency, with several nodes: messages
	// received on another node than the one they were published to, and
	// on the same one.
	CrossNode *LatencyStats `json:"cross_node,omitempty"`
	SameNode  *LatencyStats `json:"same_node,omitempty"`
}

// workerConn is the parent's side of one worker.
type workerConn struct {
	enc     *json.Encoder
	replies chan reply
	readErr chan error // the reader's final error
	stdin   io.Closer
	wait    func() error // waits for the worker to end
}

// startWorker starts a worker: a process running cfg.WorkerCommand, or
// serveWorker in a goroutine when it is empty.
func startWorker(ctx context.Context, cfg Config, stderr io.Writer) (*workerConn, error) {
	if len(cfg.WorkerCommand) == 0 {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := serveWorker(ctx, inR, outW, cfg.hooks)
			outW.CloseWithError(io.EOF)
			inR.Close()
			done <- err
		}()
		return newWorkerConn(inW, outR, func() error { return <-done }), nil
	}
	cmd := exec.CommandContext(ctx, cfg.WorkerCommand[0], cfg.WorkerCommand[1:]...)
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the worker %q: %w", cfg.WorkerCommand, err)
	}
	return newWorkerConn(in, out, cmd.Wait), nil
}

func newWorkerConn(in io.WriteCloser, out io.Reader, wait func() error) *workerConn {
	w := &workerConn{enc: json.NewEncoder(in), replies: make(chan reply), readErr: make(chan error, 1), stdin: in, wait: wait}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var r reply
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				w.readErr <- fmt.Errorf("bad line from the worker %q: %w", sc.Text(), err)
				close(w.replies)
				return
			}
			w.replies <- r
		}
		err := sc.Err()
		if err == nil {
			err = errors.New("the worker exited")
		}
		w.readErr <- err
		close(w.replies)
	}()
	return w
}

// call sends req and returns the worker's reply, or an error if none comes
// within timeout.
func (w *workerConn) call(ctx context.Context, req request, timeout time.Duration) (reply, error) {
	if err := w.enc.Encode(req); err != nil {
		return reply{}, fmt.Errorf("%s: writing to the worker: %w", req.Op, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r, ok := <-w.replies:
		if !ok {
			return reply{}, fmt.Errorf("%s: %w", req.Op, <-w.readErr)
		}
		if r.Op != req.Op {
			return reply{}, fmt.Errorf("%s: the worker replied to %q", req.Op, r.Op)
		}
		if r.Error != "" {
			return r, fmt.Errorf("%s: %s", req.Op, r.Error)
		}
		return r, nil
	case <-t.C:
		return reply{}, fmt.Errorf("%s: no reply from the worker within %v", req.Op, timeout)
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

// close ends the worker: it closes its stdin, which makes it close its
// connections and exit, and waits for that.
func (w *workerConn) close() error {
	w.stdin.Close()
	for range w.replies { // unblock the reader if it is sending
	}
	return w.wait()
}

// worker's side ---------------------------------------------------------

// lineConn is the worker's side: requests in, replies out.
type lineConn struct {
	sc  *bufio.Scanner
	mu  sync.Mutex
	enc *json.Encoder
}

func newLineConn(in io.Reader, out io.Writer) *lineConn {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &lineConn{sc: sc, enc: json.NewEncoder(out)}
}

// next returns the next request, or io.EOF when the parent closed stdin.
func (c *lineConn) next() (request, error) {
	if !c.sc.Scan() {
		if err := c.sc.Err(); err != nil {
			return request{}, err
		}
		return request{}, io.EOF
	}
	var r request
	if err := json.Unmarshal(c.sc.Bytes(), &r); err != nil {
		return request{}, fmt.Errorf("bad request %q: %w", c.sc.Text(), err)
	}
	return r, nil
}

func (c *lineConn) send(r reply) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enc.Encode(r)
}
