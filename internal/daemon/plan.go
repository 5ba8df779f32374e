package daemon

import "time"

// look is what the schedule knows about one client: when its last check ended (zero: never
// checked), the NextCheck the engine named then, when the token it last saw expires (zero: none,
// or never), and how many checks in a row could not read Secrets Manager.
type look struct {
	name      string
	checked   time.Time
	next      time.Time
	expires   time.Time
	readFails int
}

// wake is when the client needs a look before the next tick: the engine's NextCheck, the expiry of
// the token last seen (so that the daemon never sleeps past it), or a retry after a failed read,
// whichever comes first, and never sooner than minGap after the last check. Zero means the next
// tick is soon enough (and a client never checked is looked at by the first tick).
func (l look) wake() time.Time {
	if l.checked.IsZero() {
		return time.Time{}
	}
	var at time.Time
	earliest := l.checked.Add(minGap)
	use := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if t.Before(earliest) {
			t = earliest
		}
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	use(l.next)
	if l.expires.After(l.checked) {
		use(l.expires)
	}
	if l.readFails > 0 {
		use(l.checked.Add(readRetry.Ceiling(l.readFails)))
	}
	return at
}

// nextLook is when the daemon next looks at the client, given the schedule's next activation: the
// earlier of the two.
func (l look) nextLook(tickAt time.Time) time.Time {
	if w := l.wake(); !w.IsZero() && w.Before(tickAt) {
		return w
	}
	return tickAt
}

// plan is what the loop does at a given time.
type plan struct {
	// tick is true when the schedule's activation has come: every client is looked at.
	tick bool
	// due names, when there is no tick, the clients whose wake has come, in the order given.
	due []string
	// wake is, when there is nothing to do now, when there will be: the next activation or the
	// earliest wake.
	wake time.Time
}

// schedule decides, at now, whether the schedule's activation at tickAt has come, which clients
// are due, and otherwise when to wake: the one rule of when the daemon looks at whom, as a
// function of the times alone.
func schedule(now, tickAt time.Time, clients []look) plan {
	if !now.Before(tickAt) {
		return plan{tick: true}
	}
	p := plan{wake: tickAt}
	for _, c := range clients {
		w := c.wake()
		switch {
		case w.IsZero():
		case !now.Before(w):
			p.due = append(p.due, c.name)
		case w.Before(p.wake):
			p.wake = w
		}
	}
	if len(p.due) > 0 {
		p.wake = time.Time{}
	}
	return p
}
