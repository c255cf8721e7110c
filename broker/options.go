package broker

import "fmt"

// Defaults for the options of New.
const (
	DefaultBacklogMessages = 1024
	DefaultBacklogBytes    = 4 << 20
)

// Option configures a Memory broker.
type Option func(*config)

type config struct {
	backlogMessages int
	backlogBytes    int
}

// WithBacklog bounds how far a subscriber may fall behind in one room, in
// messages and in bytes of encoded messages, before Collect reports it as a
// *LagError. Each room retains that many of its newest messages, shared by
// all its subscribers, so a subscriber's backlog costs no memory of its own.
// The default is DefaultBacklogMessages and DefaultBacklogBytes.
func WithBacklog(messages, bytes int) Option {
	return func(c *config) {
		c.backlogMessages = messages
		c.backlogBytes = bytes
	}
}

func newConfig(opts []Option) (config, error) {
	c := config{backlogMessages: DefaultBacklogMessages, backlogBytes: DefaultBacklogBytes}
	for _, o := range opts {
		o(&c)
	}
	if c.backlogMessages < 1 || c.backlogBytes < 1 {
		return c, fmt.Errorf("broker: backlog must allow at least 1 message and 1 byte, got %d messages and %d bytes", c.backlogMessages, c.backlogBytes)
	}
	return c, nil
}
