package brokertest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// History stops before its messages pass maxBytes, from whichever end it
// starts, but always returns one message.
func testHistoryBytes(t *testing.T, newHub Factory) {
	h := newHub(t, broker.WithHistory(100, time.Hour))
	for _, text := range []string{"1", "2", "3", "4", "5"} {
		publish(t, h, "r", text+strings.Repeat(".", 99), "")
	}
	size := proto.Size(historyUpTo(t, h, 0, 0, false)) / 5 // each message's share: 100 bytes of text and its envelope
	for _, tc := range []struct {
		after       uint64
		maxBytes    int
		newestFirst bool
		want        string
	}{
		{0, 0, false, "12345"},
		{0, 5 * size, false, "12345"},
		{0, 2*size + size/2, false, "12"},
		{0, 2*size + size/2, true, "54"},
		{2, 2*size + size/2, false, "34"},
		{0, 1, false, "1"},
		{0, 1, true, "5"},
	} {
		hr := historyUpTo(t, h, tc.after, tc.maxBytes, tc.newestFirst)
		got := ""
		for _, m := range hr.GetMessages() {
			got += m.GetText()[:1]
		}
		if got != tc.want || hr.GetOffset() != 5 {
			t.Errorf("after %d, at most %d bytes, newest first %v: %q (offset %d), want %q", tc.after, tc.maxBytes, tc.newestFirst, got, hr.GetOffset(), tc.want)
		}
	}
	if !slices.Equal(msgTexts(historyUpTo(t, h, 4, 1, false).GetMessages()), []string{"r/5:5" + strings.Repeat(".", 99)}) {
		t.Error("a byte limit below one message does not return that one message")
	}
}

// historyUpTo calls Hub.History with a byte limit on room r, at most 100
// messages, and decodes its answer.
func historyUpTo(t testing.TB, h *broker.Hub, after uint64, maxBytes int, newestFirst bool) *roomcastv1.HistoryResponse {
	t.Helper()
	frame, err := h.History(t.Context(), "r", after, 100, maxBytes, newestFirst)
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	var resp roomcastv1.HistoryResponse
	if err := proto.Unmarshal(frame.Materialize(), &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
}
