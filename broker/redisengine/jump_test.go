package redisengine

import (
	"fmt"
	"hash/fnv"
	"testing"
)

// Jump consistent hash: keys spread evenly, and a shard appended takes
// about 1/n of the keys from the others and moves no other key.
func TestJumpMovesOnlyToAnAppendedShard(t *testing.T) {
	const keys = 3000
	for n := 1; n <= 5; n++ {
		counts := make([]int, n+1)
		moved := 0
		for i := range keys {
			h := fnv.New64a()
			fmt.Fprintf(h, "room-%d", i)
			k := h.Sum64()
			before, after := jump(k, n), jump(k, n+1)
			if before < 0 || before >= n || after < 0 || after > n {
				t.Fatalf("jump(%d, %d) = %d, jump(_, %d) = %d", k, n, before, n+1, after)
			}
			if before != after {
				if after != n {
					t.Fatalf("appending shard %d moved a key from %d to %d", n, before, after)
				}
				moved++
			}
			counts[after]++
		}
		if want := keys / (n + 1); moved < want*3/4 || moved > want*5/4 {
			t.Errorf("appending shard %d moved %d keys, want about %d", n, moved, want)
		}
		for i, c := range counts {
			if want := keys / (n + 1); c < want*3/4 || c > want*5/4 {
				t.Errorf("%d shards: shard %d has %d keys, want about %d", n+1, i, c, want)
			}
		}
	}
}
