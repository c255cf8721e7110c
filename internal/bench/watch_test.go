package bench

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// The watch variant measures the server beside the roomcast variant in one
// run, its subscribers on Watch calls over Connect, and finds a lost
// message as the others do.
func TestRunWatchVariant(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.Variants, cfg.Sizes = []string{VariantRoomcast, VariantWatch}, []int{3}
	var stdout, stderr bytes.Buffer
	rep, err := Run(testCtx(t), cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, stderr.String())
	}
	watched := 0
	for _, tr := range rep.Trials {
		if tr.Variant != VariantWatch {
			continue
		}
		watched++
		// Memory measured, not its per-stream difference: over six streams a
		// collection between the readings can make that negative.
		if !tr.OK || tr.Delivered == 0 || tr.Server == nil || tr.Server.NsPerDelivery <= 0 || tr.Server.Memory.SubscribedBytes <= 0 {
			t.Errorf("watch trial %s %d: %+v, server %+v", tr.Kind, tr.RoomSize, tr, tr.Server)
		}
	}
	if watched == 0 {
		t.Errorf("no watch trial in %d", len(rep.Trials))
	}

	cfg = tinyConfig(t)
	cfg.Variants, cfg.Sizes, cfg.Paced = []string{VariantWatch}, []int{3}, 0
	cfg.hooks.drop = func(sub int, n uint64) bool { return sub == 1 && n == 5 }
	if _, err := Run(testCtx(t), cfg, &stdout, &stderr); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "lost") {
		t.Errorf("Run with a lost message: %v, want ErrFailed", err)
	}
}

func TestWatchVariantIsOptIn(t *testing.T) {
	if got, err := ParseVariants("roomcast,watch"); err != nil || len(got) != 2 {
		t.Errorf("ParseVariants: %v, %v", got, err)
	}
	if _, err := ParseVariants("watch,bogus"); err == nil || !strings.Contains(err.Error(), "watch") {
		t.Errorf("an unknown variant: %v", err)
	}
	for _, v := range DefaultConfig().Variants {
		if v == VariantWatch {
			t.Error("watch is measured by default")
		}
	}
}
