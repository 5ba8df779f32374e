package fleet

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/rotation"
)

// The CLI and the Lambda look at four clients at once, and keep the clients' order in the answers:
// a parallelism of 4 written out, since a change of Parallel would otherwise go unnoticed.
func TestEachLooksAtFourClientsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clients := make([]*rotation.Client, 10)
		for i := range clients {
			clients[i] = &rotation.Client{}
			clients[i].Name = string(rune('a' + i))
		}
		var mu sync.Mutex
		now, peak := 0, 0
		got := each(clients, func(c *rotation.Client) string {
			mu.Lock()
			now++
			peak = max(peak, now)
			mu.Unlock()
			time.Sleep(time.Second)
			mu.Lock()
			now--
			mu.Unlock()
			return c.Name
		})
		if peak != 4 {
			t.Errorf("%d clients looked at at once, want 4", peak)
		}
		for i, name := range got {
			if name != clients[i].Name {
				t.Fatalf("answers %v are not in the clients' order", got)
			}
		}
	})
}
