package client

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// answerSamples are PublishStream responses as servers send them, and odd
// ones: ids that are not the Publisher's numbers, a result with neither
// answer, an epoch that changes within a batch.
func answerSamples() []*roomcastv1.PublishStreamResponse {
	ok := func(off uint64, epoch string) *roomcastv1.PublishStreamResponse_Ok {
		return &roomcastv1.PublishStreamResponse_Ok{Ok: &roomcastv1.PublishResponse{Offset: off, Epoch: epoch}}
	}
	res := func(id string, off uint64, epoch string) *roomcastv1.PublishStreamResult {
		return &roomcastv1.PublishStreamResult{Id: id, Result: &roomcastv1.PublishStreamResult_Ok{Ok: &roomcastv1.PublishResponse{Offset: off, Epoch: epoch}}}
	}
	refused := &roomcastv1.PublishStreamResult{Id: "12", Result: &roomcastv1.PublishStreamResult_Error{Error: &roomcastv1.Error{
		Code: 8, Message: "publish rate exceeded", RetryAfter: durationpb.New(1500)}}}
	return []*roomcastv1.PublishStreamResponse{
		{Id: "1", Result: ok(1, "e1")},
		{Id: "10", Result: ok(7, "e1"), Batch: []*roomcastv1.PublishStreamResult{res("11", 8, "e1"), refused, res("13", 9, "e2"), res("14", 1<<63, "e2")}},
		{Id: "18446744073709551615", Result: &roomcastv1.PublishStreamResponse_Error{Error: &roomcastv1.Error{Code: 3, Message: "bad room"}}},
		{Id: "18446744073709551616", Result: ok(1, "")},
		{Id: "007", Batch: []*roomcastv1.PublishStreamResult{{Id: ""}, {Id: "x"}, res("0", 0, "é")}},
		{},
	}
}

// checkAnswers decodes b as the Publisher does and as proto.Unmarshal
// does, and fails if they differ: in their answers, or in whether b is a
// response at all.
func checkAnswers(t *testing.T, b []byte) {
	var want roomcastv1.PublishStreamResponse
	werr := proto.Unmarshal(b, &want)
	var a pubAnswers
	a.items = []pubItem{{answer: pubAnswer{offset: 99}}} // left from a previous response
	gerr := a.decode(b)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("decode: %v; proto.Unmarshal: %v", gerr, werr)
	}
	if werr != nil {
		return
	}
	type answer struct {
		id string
		ok *roomcastv1.PublishResponse
		e  *roomcastv1.Error
	}
	wants := []answer{{want.GetId(), want.GetOk(), want.GetError()}}
	for _, r := range want.GetBatch() {
		wants = append(wants, answer{r.GetId(), r.GetOk(), r.GetError()})
	}
	if len(a.items) != len(wants) {
		t.Fatalf("%d answers, want %d", len(a.items), len(wants))
	}
	for i, w := range wants {
		it := &a.items[i]
		if it.id() != w.id || it.answer.offset != w.ok.GetOffset() || it.answer.epoch != w.ok.GetEpoch() ||
			(it.answer.err == nil) != (w.e == nil) || (w.e != nil && !proto.Equal(it.answer.err, w.e)) {
			t.Fatalf("answer %d: id %q, %d %q %v; want %q, %v %v", i, it.id(), it.answer.offset, it.answer.epoch, it.answer.err, w.id, w.ok, w.e)
		}
		if seq, ok := decimal([]byte(w.id)); ok != it.numeric || (ok && !it.answers(seq)) {
			t.Fatalf("answer %d: id %q numeric %v, want %v", i, w.id, it.numeric, ok)
		}
	}
}

func TestDecodeAnswersMatchesProto(t *testing.T) {
	for _, m := range answerSamples() {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		checkAnswers(t, b)
		checkAnswers(t, append(b, b...)) // fields repeated: the last id and oneof value win, messages merge
	}
	// An ok of the wrong wire type is an unknown field; an epoch that is
	// not UTF-8 and a truncated field are errors.
	for _, b := range [][]byte{
		protowire.AppendVarint(protowire.AppendTag(nil, ansOk, protowire.VarintType), 5),
		protowire.AppendBytes(protowire.AppendTag(nil, ansOk, protowire.BytesType),
			protowire.AppendString(protowire.AppendTag(nil, okEpoch, protowire.BytesType), "\xff")),
		protowire.AppendTag(nil, ansBatch, protowire.BytesType),
	} {
		checkAnswers(t, b)
	}
}

// An answer decoded costs no allocation when its epoch repeats.
func TestDecodeAnswersAllocations(t *testing.T) {
	m := &roomcastv1.PublishStreamResponse{Id: "100", Result: &roomcastv1.PublishStreamResponse_Ok{Ok: &roomcastv1.PublishResponse{Offset: 1, Epoch: "epoch"}}}
	for i := range 64 {
		m.Batch = append(m.Batch, &roomcastv1.PublishStreamResult{Id: "1" + string(rune('0'+i%10)),
			Result: &roomcastv1.PublishStreamResult_Ok{Ok: &roomcastv1.PublishResponse{Offset: uint64(i + 2), Epoch: "epoch"}}})
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var a pubAnswers
	if n := testing.AllocsPerRun(100, func() {
		if err := a.decode(b); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per response of 65 answers, want 0", n)
	}
}

func FuzzDecodeAnswers(f *testing.F) {
	for _, m := range answerSamples() {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, b...))
	}
	f.Fuzz(checkAnswers)
}
