package chaostest

import (
	"fmt"
	"testing"
)

// step is one event fed to a Tally: a message at pos with payload, or
// (gap set) a Gap from pos to resumed.
type step struct {
	pos     Pos
	payload string
	gap     bool
	resumed Pos
}

func msg(epoch string, off uint64) step {
	return step{pos: Pos{epoch, off}, payload: fmt.Sprint(off, "@", epoch)}
}

func gapTo(last, resumed Pos) step { return step{pos: last, gap: true, resumed: resumed} }

// Each fault a subscriber can suffer is counted as what it is, and a clean
// run counts none.
func TestTallyClassifies(t *testing.T) {
	for _, tc := range []struct {
		name  string
		join  Pos
		steps []step
		want  Counts
	}{
		{"in order from an empty room", Pos{}, []step{msg("a", 1), msg("a", 2), msg("a", 3)}, Counts{Delivered: 3}},
		{"in order from a join", Pos{"a", 5}, []step{msg("a", 6), msg("a", 7)}, Counts{Delivered: 2}},
		{"same offset twice", Pos{}, []step{msg("a", 1), msg("a", 2), msg("a", 2)}, Counts{Delivered: 3, Duplicated: 1}},
		{"the joined position again", Pos{"a", 5}, []step{msg("a", 5)}, Counts{Delivered: 1, Duplicated: 1}},
		{"same payload at another offset", Pos{}, []step{msg("a", 1), {pos: Pos{"a", 2}, payload: "1@a"}}, Counts{Delivered: 2, Duplicated: 1}},
		{"offset back", Pos{}, []step{msg("a", 1), msg("a", 3), msg("a", 2)}, Counts{Delivered: 3, Silent: 1, Reordered: 1}},
		{"jump", Pos{}, []step{msg("a", 1), msg("a", 4)}, Counts{Delivered: 2, Silent: 1}},
		{"new epoch unsaid", Pos{}, []step{msg("a", 1), msg("b", 1)}, Counts{Delivered: 2, Silent: 1}},
		{"back to an old epoch", Pos{}, []step{msg("a", 1), gapTo(Pos{"a", 1}, Pos{"b", 0}), msg("b", 1), msg("a", 2)}, Counts{Delivered: 3, Signalled: 1, Reordered: 1}},
		{"gap in an epoch", Pos{}, []step{msg("a", 1), gapTo(Pos{"a", 1}, Pos{"a", 4}), msg("a", 5)}, Counts{Delivered: 2, Signalled: 1}},
		{"gap to a new epoch", Pos{"a", 3}, []step{gapTo(Pos{"a", 3}, Pos{"b", 2}), msg("b", 3)}, Counts{Delivered: 1, Signalled: 1}},
		{"gap to an empty room", Pos{"a", 3}, []step{gapTo(Pos{"a", 3}, Pos{}), msg("b", 1)}, Counts{Delivered: 1, Signalled: 1}},
		{"gap from elsewhere", Pos{}, []step{msg("a", 1), gapTo(Pos{"a", 3}, Pos{"a", 4}), msg("a", 5)}, Counts{Delivered: 2, Signalled: 1, Silent: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := NewTally()
			tl.Joined("r", tc.join)
			for _, s := range tc.steps {
				if s.gap {
					tl.Gap("r", s.pos, s.resumed)
				} else {
					tl.Message("r", s.pos, s.payload)
				}
			}
			if got := tl.Counts(); got != tc.want {
				t.Errorf("counts %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Check finds acknowledged messages neither delivered nor covered by a gap,
// and those delivered with another payload.
func TestTallyCheck(t *testing.T) {
	l := NewLedger()
	for _, p := range []Pos{{"a", 1}, {"a", 2}, {"a", 3}, {"a", 4}, {"a", 5}, {"b", 1}, {"b", 2}, {"b", 3}} {
		if err := l.Acked("r", p, fmt.Sprint(p.Offset, "@", p.Epoch)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Acked("r", Pos{"a", 1}, "other"); err == nil {
		t.Error("a position acknowledged twice for two payloads was not reported")
	}
	tl := NewTally()
	tl.Joined("r", Pos{})
	tl.Message("r", Pos{"a", 1}, "1@a")
	tl.Message("r", Pos{"a", 2}, "not what was published")
	// a's 3 to 5 are lost with epoch a, and b's 1; b's 3 is not there yet.
	tl.Gap("r", Pos{"a", 2}, Pos{"b", 1})
	tl.Message("r", Pos{"b", 2}, "2@b")
	missing, wrong := tl.Check(l, "r")
	if fmt.Sprint(missing) != "[3@b]" || fmt.Sprint(wrong) != "[2@a]" {
		t.Errorf("missing %v, wrong %v; want 3@b missing (the gap covers a's 3 to 5 and b's 1) and 2@a wrong", missing, wrong)
	}
	tl = NewTally()
	tl.Joined("r", Pos{"a", 1}) // a's 1 came before: not expected
	tl.Gap("r", Pos{"a", 1}, Pos{"a", 3})
	tl.Message("r", Pos{"a", 4}, "4@a")
	missing, _ = tl.Check(l, "r")
	if fmt.Sprint(missing) != "[5@a 1@b 2@b 3@b]" {
		t.Errorf("missing %v, want [5@a 1@b 2@b 3@b]", missing)
	}
}
