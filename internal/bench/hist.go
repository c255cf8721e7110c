package bench

import (
	"math"
	"math/bits"
)

// histogram counts durations in nanoseconds in log-linear buckets: exact
// below 64 ns, then 32 buckets per power of two, so a percentile read from
// it is within 1.6% of the true value. Not safe for concurrent use.
type histogram struct {
	counts []uint32
	n      uint64
	sum    float64
	max    int64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits // buckets per power of two
	histLinear  = 2 * histSub      // values below this have a bucket each
	histMaxBits = 42               // about 73 minutes; longer is clamped
	histBuckets = histLinear + (histMaxBits-histSubBits-1)*histSub
)

func bucketOf(v int64) int {
	if v < histLinear {
		return int(max(v, 0))
	}
	msb := bits.Len64(uint64(v)) - 1 // >= histSubBits+1
	if msb >= histMaxBits {
		return histBuckets - 1
	}
	shift := msb - histSubBits
	mant := int(uint64(v)>>shift) - histSub // 0 to histSub-1
	return histLinear + (msb-histSubBits-1)*histSub + mant
}

// bucketMid is the middle of bucket i's range.
func bucketMid(i int) float64 {
	if i < histLinear {
		return float64(i)
	}
	i -= histLinear
	msb := i/histSub + histSubBits + 1
	shift := msb - histSubBits
	lo := uint64(histSub+i%histSub) << shift
	return float64(lo) + float64(uint64(1)<<shift)/2
}

func (h *histogram) record(v int64) {
	if h.counts == nil {
		h.counts = make([]uint32, histBuckets)
	}
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint32, histBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value below which a fraction q of the values lie.
func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return min(bucketMid(i), float64(h.max))
		}
	}
	return float64(h.max)
}

// LatencyStats summarizes publish-to-delivery latencies, in microseconds.
type LatencyStats struct {
	Count  uint64  `json:"count"`
	MeanUS float64 `json:"mean_us"`
	P50US  float64 `json:"p50_us"`
	P99US  float64 `json:"p99_us"`
	P999US float64 `json:"p999_us"`
	MaxUS  float64 `json:"max_us"`
}

func (h *histogram) stats() *LatencyStats {
	if h.n == 0 {
		return &LatencyStats{}
	}
	return &LatencyStats{
		Count:  h.n,
		MeanUS: h.sum / float64(h.n) / 1e3,
		P50US:  h.quantile(0.50) / 1e3,
		P99US:  h.quantile(0.99) / 1e3,
		P999US: h.quantile(0.999) / 1e3,
		MaxUS:  float64(h.max) / 1e3,
	}
}
