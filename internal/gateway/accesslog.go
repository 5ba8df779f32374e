package gateway

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Access log batching defaults: a line is about 200 bytes, so DefaultAccessLogBuffer holds some
// 5,000 lines, half a second of a busy gateway; DefaultAccessLogFlush is how stale a line may get
// before it reaches the log.
const (
	DefaultAccessLogBuffer = 1 << 20
	DefaultAccessLogFlush  = 100 * time.Millisecond
)

// BatchWriter takes the access log's write system call off the request path: Write appends the
// line to a bounded buffer under a short lock, and one goroutine writes the buffer out every
// flush interval, or at once when it is half full. A line never waits for the log's writer.
//
// It is bounded: when the writer cannot keep up and the buffer is full, a line is dropped whole
// (never split), counted (Dropped), and reported through OnDrop at the next flush. Lines are
// written in the order they came; lines of other loggers on the same stream may come up to one
// flush interval before them.
type BatchWriter struct {
	out      io.Writer
	max      int
	interval time.Duration
	// OnDrop, when set, is called from the flushing goroutine with the number of lines dropped
	// since its last call. Set it before the first Write.
	OnDrop func(n uint64)

	mu      sync.Mutex
	buf     []byte
	closed  bool
	dropped atomic.Uint64

	flushMu  sync.Mutex // one flush at a time: the goroutine's or Close's
	spare    []byte
	reported uint64

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewBatchWriter starts a BatchWriter to out holding at most max bytes (zero:
// DefaultAccessLogBuffer) and flushing every interval (zero: DefaultAccessLogFlush). Close it
// to write what it still holds.
func NewBatchWriter(out io.Writer, max int, interval time.Duration) *BatchWriter {
	if max <= 0 {
		max = DefaultAccessLogBuffer
	}
	if interval <= 0 {
		interval = DefaultAccessLogFlush
	}
	w := &BatchWriter{out: out, max: max, interval: interval, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Write queues p (one log line: slog's handlers write a record per call) for the next flush. It
// always reports success, so that a full buffer does not turn into a logging error: the line is
// counted as dropped instead. After Close it writes through.
func (w *BatchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.flushMu.Lock()
		defer w.flushMu.Unlock()
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > w.max {
		w.mu.Unlock()
		w.dropped.Add(1)
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	half := len(w.buf) >= w.max/2
	w.mu.Unlock()
	if half {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Dropped returns how many lines were dropped for want of room.
func (w *BatchWriter) Dropped() uint64 { return w.dropped.Load() }

func (w *BatchWriter) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.kick:
		case <-w.stop:
			return
		}
		w.Flush()
	}
}

// Flush writes out what the buffer holds now.
func (w *BatchWriter) Flush() {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	w.buf, w.spare = w.spare[:0], w.buf
	w.mu.Unlock()
	if len(w.spare) > 0 {
		_, _ = w.out.Write(w.spare)
	}
	if cap(w.spare) > 2*w.max {
		w.spare = nil // a burst grew it: give it back
	}
	w.report()
}

// report tells OnDrop about lines dropped since it was last told. Called under flushMu.
func (w *BatchWriter) report() {
	if d := w.dropped.Load(); d != w.reported {
		n := d - w.reported
		w.reported = d
		if w.OnDrop != nil {
			w.OnDrop(n)
		}
	}
}

// Close stops the flushing goroutine and writes what is left; later writes go straight through.
func (w *BatchWriter) Close() error {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
		w.flushMu.Lock()
		defer w.flushMu.Unlock()
		w.mu.Lock()
		w.closed = true
		pending := w.buf
		w.buf = nil
		w.mu.Unlock()
		if len(pending) > 0 {
			_, _ = w.out.Write(pending)
		}
		w.report()
	})
	return nil
}

// accessEntry is what the access log says about one request.
type accessEntry struct {
	at       time.Time
	method   string
	path     string
	status   int
	took     time.Duration
	client   string
	replayed bool
}

// accessMsg is the access line's message.
const accessMsg = "gateway request"

// attrs are the entry's attributes, in the line's order.
func (e *accessEntry) attrs() []slog.Attr {
	return []slog.Attr{slog.String("method", e.method), slog.String("path", e.path), slog.Int("status", e.status),
		slog.String("duration", e.took.String()), slog.String("client", e.client), slog.Bool("replayed", e.replayed)}
}

// appendAccessJSON appends e as one line in the JSON that logging.New's handler writes for
// LogAttrs(ctx, LevelInfo, accessMsg, e.attrs()...) at e.at, byte for byte
// (TestAccessJSONIsSlogs): on a busy gateway, slog's record, its stack walk for the source and its
// per-attribute hooks were a sixth of the CPU a request costs (BENCHMARKS.md 9). It reports false,
// having appended nothing, when a string would need escaping or the time is outside slog's
// years (or zero, which slog leaves out): such a line goes through slog, which escapes it its
// own way.
func appendAccessJSON(b []byte, e *accessEntry) ([]byte, bool) {
	if !plainJSON(e.method) || !plainJSON(e.path) || !plainJSON(e.client) || e.at.IsZero() || e.at.Year() < 0 || e.at.Year() > 9999 {
		return b, false
	}
	b = append(b, `{"time":"`...)
	b = e.at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"`+accessMsg+`","method":"`...)
	b = append(b, e.method...)
	b = append(b, `","path":"`...)
	b = append(b, e.path...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"duration":"`...)
	b = append(b, e.took.String()...)
	b = append(b, `","client":"`...)
	b = append(b, e.client...)
	b = append(b, `","replayed":`...)
	b = strconv.AppendBool(b, e.replayed)
	return append(b, "}\n"...), true
}

// plainJSON reports whether s goes into a JSON string as it is: printable ASCII without a quote
// or a backslash.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// accessBufs are the access lines' buffers: BatchWriter.Write copies the line.
var accessBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// logAccess writes e's line: encoded here when the access log is JSON and e is plain, else
// through the access logger.
func (g *Gateway) logAccess(ctx context.Context, e *accessEntry) {
	if !g.access.Enabled(ctx, slog.LevelInfo) {
		return
	}
	if g.o.AccessJSON != nil {
		bp := accessBufs.Get().(*[]byte)
		b, ok := appendAccessJSON((*bp)[:0], e)
		if ok {
			_, _ = g.o.AccessJSON.Write(b)
		}
		if cap(b) <= 4<<10 {
			*bp = b
			accessBufs.Put(bp)
		}
		if ok {
			return
		}
	}
	g.access.LogAttrs(ctx, slog.LevelInfo, accessMsg, e.attrs()...)
}
