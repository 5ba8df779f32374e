package gateway

import "sync/atomic"

// budget bounds the memory that request bodies buffered for a replay take at once. The replay
// limit bounds one body; without a budget, only MaxConns times that bounds them all (16 GiB by
// default), and a few hundred large POSTs at once could get the process killed, the daemon's
// rotation with it when the gateway is embedded.
type budget struct {
	total int64
	left  atomic.Int64
}

func newBudget(total int64) *budget {
	b := &budget{total: total}
	b.left.Store(total)
	return b
}

// take takes n bytes, if that many are left; never none or fewer (a guard: it would add).
func (b *budget) take(n int64) bool {
	for {
		l := b.left.Load()
		if n <= 0 || n > l {
			return false
		}
		if b.left.CompareAndSwap(l, l-n) {
			return true
		}
	}
}

// give gives back n bytes taken.
func (b *budget) give(n int64) { b.left.Add(n) }

// used is how many bytes are taken.
func (b *budget) used() int64 { return b.total - b.left.Load() }
