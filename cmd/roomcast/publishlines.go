package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"

	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/client"
)

// maxLineBytes bounds a line of standard input: larger than any message a
// server takes by default (1 MiB), so the server, not the reader, says what
// the limit is.
const maxLineBytes = 4 << 20

// maxKeyPrefix bounds --idempotency-key with standard input, which appends
// "-" and the line number to it.
const maxKeyPrefix = 128 - 21

// publishLines publishes each line of in as one text message to room on p,
// pipelined, and writes one line to out per line of in, in order: the
// offset, or "error: CODE: message". key, when not empty, gives line n the
// idempotency key key-n, so that running the same input with the same key
// again within the server's window publishes nothing twice. When ctx ends,
// it reads no more lines, but waits for the answers to those it sent. It
// returns how many lines it published and how many failed, and an error if
// reading in or writing out failed.
func publishLines(ctx context.Context, p *client.Publisher, room string, in io.Reader, out io.Writer, key string, opts []client.PublishOption) (sent, failed int, err error) {
	pubCtx := context.WithoutCancel(ctx) // what was read is published, even after ctx ends
	calls := make(chan *client.PublishCall, client.DefaultMaxInFlight)
	written := make(chan error, 1)
	go func() { // the writer: answers in the order of the lines
		var werr error
		for call := range calls {
			off, _, err := call.Wait(pubCtx)
			if err != nil {
				failed++
			}
			if werr == nil {
				werr = writeResult(out, off, err)
			}
		}
		written <- werr
	}()
	lines := make(chan string)
	var rerr error // set before lines is closed
	go func() {    // the reader; one blocked reading a terminal when ctx ends is left behind
		scan := bufio.NewScanner(in)
		scan.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
		for scan.Scan() {
			select {
			case lines <- scan.Text():
			case <-ctx.Done():
				return
			}
		}
		rerr = scan.Err()
		close(lines)
	}()
	eof := false // lines was closed: rerr is set
read:
	for {
		var text string
		select {
		case line, ok := <-lines:
			if !ok {
				eof = true
				break read
			}
			text = line
		case <-ctx.Done():
			break read
		}
		sent++
		lineOpts := opts
		if key != "" {
			lineOpts = append(opts[:len(opts):len(opts)], client.WithIdempotencyKey(key+"-"+strconv.Itoa(sent)))
		}
		// Sent in the order of the lines, so sequenced in that order; the
		// send waits while the Publisher's window of answers is full.
		calls <- p.PublishTextAsync(pubCtx, room, text, lineOpts...)
	}
	close(calls)
	werr := <-written
	if eof && rerr != nil {
		return sent, failed, fmt.Errorf("reading standard input: %w", rerr)
	}
	if werr != nil {
		return sent, failed, fmt.Errorf("writing the offsets: %w", werr)
	}
	return sent, failed, nil
}

// writeResult writes one line's answer: its offset, or its error.
func writeResult(out io.Writer, offset uint64, perr error) error {
	if perr != nil {
		st := status.Convert(perr)
		_, err := fmt.Fprintf(out, "error: %s: %s\n", st.Code(), st.Message())
		return err
	}
	_, err := fmt.Fprintln(out, offset)
	return err
}
