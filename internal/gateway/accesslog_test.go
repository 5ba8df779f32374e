package gateway_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

// syncBuffer is a bytes.Buffer safe for the flushing goroutine and the test; block, when set,
// makes writes wait (a log writer that does not keep up).
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	block  chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	if s.block != nil {
		<-s.block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Lines are batched (far fewer writes than lines), flushed within the interval without a Close,
// in order, and whole.
func TestBatchWriterBatchesAndFlushesPromptly(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	w := gateway.NewBatchWriter(out, 1<<20, 20*time.Millisecond)
	defer w.Close()
	var want strings.Builder
	for i := range 1000 {
		line := fmt.Sprintf("line %04d\n", i)
		want.WriteString(line)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != want.String() {
		if time.Now().After(deadline) {
			t.Fatalf("not flushed within 5 s: %d of %d bytes", len(out.String()), want.Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
	out.mu.Lock()
	writes := out.writes
	out.mu.Unlock()
	if writes > 10 {
		t.Errorf("%d writes for 1000 lines; want them batched", writes)
	}
	if w.Dropped() != 0 {
		t.Errorf("%d dropped", w.Dropped())
	}
}

// A writer that does not keep up: the buffer stays bounded, lines are dropped whole and counted,
// OnDrop hears of them, and Close writes what was kept.
func TestBatchWriterIsBoundedAndCountsDrops(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{block: make(chan struct{})}
	w := gateway.NewBatchWriter(out, 100, time.Millisecond)
	var told atomic.Uint64
	w.OnDrop = func(n uint64) { told.Add(n) }
	line := []byte("0123456789\n") // 11 bytes
	// The flusher takes the first batch and blocks writing it; the buffer then fills up again.
	for range 200 {
		if n, err := w.Write(line); err != nil || n != len(line) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		time.Sleep(10 * time.Microsecond)
	}
	if w.Dropped() == 0 {
		t.Fatal("nothing dropped behind a blocked writer with a 100-byte buffer")
	}
	close(out.block)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	kept := strings.Count(got, "\n")
	if uint64(kept)+w.Dropped() != 200 {
		t.Errorf("kept %d + dropped %d lines; want 200", kept, w.Dropped())
	}
	if strings.ReplaceAll(got, string(line), "") != "" {
		t.Errorf("a line was split: %q", got)
	}
	if told.Load() != w.Dropped() {
		t.Errorf("OnDrop told of %d lines, Dropped says %d", told.Load(), w.Dropped())
	}
	// After Close, lines go straight through.
	_, _ = w.Write([]byte("late\n"))
	if !strings.HasSuffix(out.String(), "late\n") {
		t.Error("a line written after Close was lost")
	}
}
