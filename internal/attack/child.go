package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// childSpec is what a child process is asked to do.
type childSpec struct {
	Attack   string        `json:"attack"`
	Addr     string        `json:"addr"` // the server's, on 127.0.0.1
	Key      string        `json:"key"`  // the attacker's API key
	Duration time.Duration `json:"duration"`
}

// childResult is what a child reports, as one line of JSON on stdout.
type childResult struct {
	Summary string `json:"summary"`
	Err     string `json:"err,omitempty"`
}

// childGrace is how long after its duration a child may take to stop
// before it is killed.
const childGrace = 10 * time.Second

// startChild runs spec's attack in a child process: this program again,
// pinned as pin says.
// The result arrives on the channel once the child has exited.
func startChild(ctx context.Context, spec childSpec, pin pinning) (<-chan childResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Duration+childGrace)
	name, args := pin.command(self)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	out := make(chan childResult, 1)
	go func() {
		defer cancel()
		var r childResult
		dec := json.NewDecoder(stdout)
		decErr := dec.Decode(&r)
		io.Copy(io.Discard, stdout)
		err := cmd.Wait()
		switch {
		case ctx.Err() == context.DeadlineExceeded:
			r.Err = fmt.Sprintf("killed: still running %v after its duration", childGrace)
		case err != nil || decErr != nil:
			r.Err = strings.TrimSpace(fmt.Sprintf("%v %v %s", err, decErr, lastLine(stderr.String())))
		}
		out <- r
	}()
	return out, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// runChild runs the attack that spec (JSON) names, for its duration, and
// prints the result. It returns the exit status.
func runChild(ctx context.Context, spec string, stdout io.Writer) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintf(os.Stderr, "attack child: %v\n", err)
		return 2
	}
	i := slices.IndexFunc(attacks, func(a *attack) bool { return a.name == s.Attack })
	if i < 0 {
		fmt.Fprintf(os.Stderr, "attack child: no attack %q\n", s.Attack)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, s.Duration)
	defer cancel()
	summary, err := attacks[i].run(ctx, s)
	r := childResult{Summary: summary}
	if err != nil {
		r.Err = err.Error()
	}
	json.NewEncoder(stdout).Encode(r)
	return 0
}

// dial returns plaintext gRPC connections to addr, each of its own, and
// what closes them.
func dial(addr string, n int, opts ...grpc.DialOption) ([]*grpc.ClientConn, func(), error) {
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	for range n {
		c, err := grpc.NewClient(addr, opts...)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, c)
	}
	return conns, closeAll, nil
}

// tally counts outcomes by name; it is safe for concurrent use.
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func (t *tally) add(what string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil {
		t.n = make(map[string]int)
	}
	t.n[what] += n
}

// code counts a call's outcome: OK, or its status code, or "cancelled" for
// calls cut short by the end of the attack.
func (t *tally) code(ctx context.Context, err error) {
	switch {
	case err == nil:
		t.add("OK", 1)
	case ended(ctx):
		t.add("cut short at the end", 1)
	default:
		t.add(status.Code(err).String(), 1)
	}
}

// total is every count together.
func (t *tally) total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, v := range t.n {
		n += v
	}
	return n
}

func (t *tally) get(what string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n[what]
}

// String lists the counts, largest first: "1,234 OK, 5 Unavailable".
func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.n))
	for k := range t.n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if t.n[keys[i]] != t.n[keys[j]] {
			return t.n[keys[i]] > t.n[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = commas(t.n[k]) + " " + k
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// commas formats n with thousands separators.
func commas(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ended reports whether the attack is over: ctx is done, or its deadline
// has passed, which gRPC may see before ctx's timer fires.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
