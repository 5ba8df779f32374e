package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/fake"
	"github.com/clear-rotator/clear-rotator/internal/rig"
	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// scaleClients is how many clients BenchmarkScale runs; BENCH_CLIENTS overrides it.
func scaleClients() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_CLIENTS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// BenchmarkScale runs 1,000 clients (each with its own client secret and token secret) on one
// engine against moto, eight at a time as the daemon's worker pool does: the first tick (which
// creates every secret and rotates), an idle tick where no token is due (engine.Rotate on every
// client, as a rotator without the daemon's cache, the CLI or the Lambda, runs it), and a tick
// where every token is due. It reports each tick's duration, Secrets Manager calls and the heap
// the clients and the engine hold, and extrapolates to 10,000 clients.
func BenchmarkScale(b *testing.B) {
	const workers = 8
	n := scaleClients()
	clk := fake.NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))
	w := rig.New(b, rig.Options{Clock: clk, Lifetime: time.Hour, DailyLimit: 250})
	secrets := make([]string, n)
	for i := range secrets {
		secrets[i] = fmt.Sprintf("bench-scale-client-secret-%06d-0123456789", i)
		w.Emu.AddSecret(secrets[i])
	}

	// What is measured is the engine and the clients as the daemon holds them: a plain Clear client
	// each (not the rig's recording one) and no log buffer.
	heapBefore := heap()
	engine := w.Engine("bench-scale")
	engine.Log = slog.New(slog.DiscardHandler)
	clients := make([]*rotation.Client, n)
	for i := range clients {
		cc, err := clear.NewClient(w.ClearURL, nil)
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = &rotation.Client{Clear: cc, Client: config.Client{Name: fmt.Sprintf("erp-%06d", i), BaseURL: w.ClearURL,
			ClientSecret: clear.NewClientSecret(secrets[i]), TokenSecretID: fmt.Sprintf("%s/%06d", w.TokenID, i), DailyLimit: 250}}
	}

	tick := func(name string, want rotation.Outcome) time.Duration {
		w.API.TakeCalls()
		var mu sync.Mutex
		wrong := 0
		jobs := make(chan *rotation.Client)
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Go(func() {
				for c := range jobs {
					if r := engine.Rotate(context.Background(), c, false); r.Outcome != want {
						mu.Lock()
						if wrong++; wrong <= 3 {
							b.Logf("%s: %s: %s", c.Name, r.Outcome, r.Message)
						}
						mu.Unlock()
					}
				}
			})
		}
		for _, c := range clients {
			jobs <- c
		}
		close(jobs)
		wg.Wait()
		took := time.Since(start)
		calls, byOp := w.API.TakeCalls()
		if wrong > 0 {
			b.Fatalf("%s: %d clients did not come out %s", name, wrong, want)
		}
		b.Logf("%-10s %d clients in %s (%.1f ms/client, %d Secrets Manager calls %v, %.0f calls/s)",
			name, n, took.Round(time.Millisecond), ms(took)/float64(n), calls, byOp, float64(calls)/took.Seconds())
		return took
	}

	var first, idle, due time.Duration
	var held uint64
	for range b.N {
		first = tick("first", rotation.Rotated)
		clk.Advance(10 * time.Minute)
		idle = tick("idle", rotation.NotDue)
		clk.Advance(35 * time.Minute)
		held = heap() - heapBefore
		due = tick("all-due", rotation.Rotated)
	}
	runtime.KeepAlive(clients)
	b.ReportMetric(first.Seconds(), "first-tick-s")
	b.ReportMetric(idle.Seconds(), "idle-tick-s")
	b.ReportMetric(due.Seconds(), "due-tick-s")
	b.ReportMetric(float64(held)/float64(n), "heap-B/client")
	scale := 10000 / float64(n)
	b.Logf("heap held by %d clients and the engine: %.1f MiB (%.0f B/client)", n, float64(held)/(1<<20), float64(held)/float64(n))
	b.Logf("extrapolated to 10,000 clients at the same call rate: first tick %s, idle tick %s, all-due tick %s, heap %.0f MiB",
		time.Duration(float64(first)*scale).Round(time.Second), time.Duration(float64(idle)*scale).Round(time.Second),
		time.Duration(float64(due)*scale).Round(time.Second), float64(held)*scale/(1<<20))
}

// heap returns the live heap after a collection.
func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
