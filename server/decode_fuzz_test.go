package server

import (
	"testing"

	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// FuzzEntryCounts checks the counts that requests are refused by before
// decoding against what the decoder makes of the same bytes: they never
// count fewer entries than it decodes, so nothing decodes to more than the
// limits let through, and nothing panics.
func FuzzEntryCounts(f *testing.F) {
	for _, m := range []proto.Message{
		&roomcastv1.PublishRequest{Room: "r", Headers: map[string]string{"a": "1", "b": "2"}, Payload: &roomcastv1.PublishRequest_Text{Text: "x"}},
		&roomcastv1.SubscribeRequest{Id: "1", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "r", Info: map[string]string{"k": "v", "l": "w"}}}},
		&roomcastv1.SubscribeRequest{Id: "2", Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: "r"}}},
		&roomcastv1.PublishStreamRequest{Id: "3", Publish: &roomcastv1.PublishRequest{Room: "r", Headers: map[string]string{"a": "1"}}},
		&roomcastv1.PublishStreamRequest{Id: "4", Publish: &roomcastv1.PublishRequest{Room: "r"}, Batch: []*roomcastv1.PublishStreamItem{
			{Id: "5", Publish: &roomcastv1.PublishRequest{Room: "r", Headers: map[string]string{"a": "1", "b": "2"}}},
			{Id: "6"},
			{Id: "7", Publish: &roomcastv1.PublishRequest{Room: "s", Headers: map[string]string{"c": "3"}, IdempotencyKey: "k"}},
		}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, b...)) // fields repeated: maps and messages merge
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = precheck(b, new(roomcastv1.PublishRequest), requestLimits{publish: len(b), watch: len(b)})
		_ = precheck(b, new(roomcastv1.SubscribeRequest), requestLimits{publish: len(b), watch: len(b)})
		_ = precheck(b, new(roomcastv1.PublishStreamRequest), requestLimits{publish: len(b), watch: len(b)})
		_ = precheck(b, new(roomcastv1.WatchRequest), requestLimits{publish: len(b), watch: len(b)})
		pub := new(roomcastv1.PublishRequest)
		if proto.Unmarshal(b, pub) == nil {
			if n := countField(b, publishHeaders); n < len(pub.GetHeaders()) {
				t.Fatalf("counted %d header entries, decoded %d", n, len(pub.GetHeaders()))
			}
		}
		ps := new(roomcastv1.PublishStreamRequest)
		if proto.Unmarshal(b, ps) == nil {
			if n := countNested(b, streamPublish, publishHeaders); n < len(ps.GetPublish().GetHeaders()) {
				t.Fatalf("counted %d header entries in a stream's publish, decoded %d", n, len(ps.GetPublish().GetHeaders()))
			}
			publishes, most := publishCounts(b)
			if publishes != 1+len(ps.GetBatch()) {
				t.Fatalf("counted %d publishes, decoded %d", publishes, 1+len(ps.GetBatch()))
			}
			for _, it := range append([]*roomcastv1.PublishStreamItem{{Publish: ps.GetPublish()}}, ps.GetBatch()...) {
				if n := len(it.GetPublish().GetHeaders()); n > most {
					t.Fatalf("counted at most %d header entries in a publish, decoded one with %d", most, n)
				}
			}
		}
		sub := new(roomcastv1.SubscribeRequest)
		if proto.Unmarshal(b, sub) == nil {
			if n := countNested(b, subscribeJoin, joinInfo); n < len(sub.GetJoin().GetInfo()) {
				t.Fatalf("counted %d info entries, decoded %d", n, len(sub.GetJoin().GetInfo()))
			}
		}
	})
}
