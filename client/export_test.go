package client

// Leased reports whether the last Next call to read s's stream itself
// keeps it until the next call.
func Leased(s *Subscription) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn != nil && s.conn.turn == turnLeased
}

// Queued is the number of events s holds for its reader.
func Queued(s *Subscription) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued()
}

// ReceiverStarts is how many times wake started s's receiver again.
func ReceiverStarts(s *Subscription) uint64 { return s.starts.Load() }

// RejoinsWaiting is how many of s's rejoins wait to be sent again after a
// command rate refused them.
func RejoinsWaiting(s *Subscription) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return 0
	}
	return len(s.conn.rateWait.rooms)
}

// RejoinsResent is how many rejoins s sent again after a command rate
// refused them.
func RejoinsResent(s *Subscription) uint64 { return s.resent.Load() }
