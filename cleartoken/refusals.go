package cleartoken

import (
	"slices"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/apicall"
	sec "github.com/clear-rotator/clear-rotator/internal/secret"
)

// outlivedCall is a call refused with the outlived token, the number of whole waits that ended
// with the token still in AWSCURRENT after it was refused (waits not separated by an acceptance of
// the token count once: they may be one incident of Clear's), whether a wait after its refusal was
// ended by Clear accepting the token for a later request (confirmed), and whether a whole wait of
// its own, begun while it was taken for refused, ended with no other call refused during it
// (judged: an ERP that sends nothing else while it waits has no acceptance to confirm it).
type outlivedCall struct {
	call      apicall.Call
	waits     int
	confirmed bool
	judged    bool
}

// knownRecheck is how old the cache may be for a known refusal to be answered at once: older, the
// secret is read first (one read for every caller at the time), in case the rotator stored a newer
// token after all, later than a wait.
const knownRecheck = 5 * time.Second

// judgeHold bounds how long a wait that judges a call taken for refused (flight.judging) holds the
// calls that cannot be sent again: long enough for a rotator to store the newer token at a
// rotation as it usually does, short enough that an ERP with no other call to send has one go out,
// whose acceptance ends the wait, rather than hold them all for the whole wait. A rotator that
// stores later than that (Secrets Manager slow) leaves those calls the 401 they had before.
const judgeHold = 2 * time.Second

// maxCalls bounds the calls remembered for one refused token, in a wait and once outlived; the
// least recently used goes first. An ERP that calls more APIs its API client lacks than this holds
// the others for a wait now and then, no worse.
const maxCalls = 64

// refuser is who tells the Source a token was refused: the call Clear refused (the zero Call for
// Refused's, which cannot tell calls apart) and the number of the last request sent when the
// refusal was known (Source.sent), so that an acceptance can be told to come from a request sent
// after it.
type refuser struct {
	call apicall.Call
	seq  uint64
	once bool // not a refusal: a Get for a request that cannot be sent again (Source.getOnce)
}

// number gives a request the next number, as the Transport sends it.
func (s *Source) number() uint64 { return s.sent.Add(1) }

// accepted tells the Source that Clear accepted t for call c, sent as request seq. A request sent
// after a refusal of t and accepted says t is not revoked, so the refusal was of the call, for a
// reason of its own (the gateway's rule, CallRefused): a wait for t's successor under way ends, and
// once a wait has outlived t, its calls are known. c itself, accepted, is no longer taken for
// refused, at every acceptance (watching stays set while calls are known). sentAt is when the
// request was sent: only one sent within judgeHold of the wait's last refusal, as a busy ERP's
// are, confirms the calls refused (acceptedMeanwhile); one sent later (a health check after an
// incident of Clear's) still ends the wait, but says nothing of why they were refused.
func (s *Source) accepted(t Token, c apicall.Call, seq uint64, sentAt time.Time) {
	if !s.watching.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := t.Value()
	if f := s.waitingFor(tok); f != nil && seq > f.seq {
		f.confirms = f.confirms || sentAt.Sub(f.lastRefusal) <= judgeHold
		f.accept()
		// c is accepted: the wait's end must not take it for refused.
		f.calls = slices.DeleteFunc(f.calls, func(k apicall.Call) bool { return k.Is(c.Method, c.Path) })
	}
	if tok == s.outlived.Reveal() && seq > s.outlivedSeq {
		s.acceptedAgain()
		s.outlivedCalls = slices.DeleteFunc(s.outlivedCalls, func(k outlivedCall) bool { return k.call.Is(c.Method, c.Path) })
	}
	s.learnt = slices.DeleteFunc(s.learnt, func(k apicall.Call) bool { return k.Is(c.Method, c.Path) })
	s.updateWatching()
}

// acceptedAgain records that Clear accepted the outlived token for a request sent after the last
// whole wait (acceptedAfter). At the first such acceptance, the whole waits each call outlived
// before it count once: with no acceptance between them, they may all be one incident of Clear's.
// s.mu must be held.
func (s *Source) acceptedAgain() {
	if !s.acceptedAfter {
		for i := range s.outlivedCalls {
			s.outlivedCalls[i].waits = min(s.outlivedCalls[i].waits, 1)
		}
	}
	s.acceptedAfter = true
}

// waitingFor returns the wait for the successor of refused under way, or due after the plain read
// under way; nil when there is none. s.mu must be held.
func (s *Source) waitingFor(refused string) *flight {
	f := s.flight
	if f != nil && f.next != nil {
		f = f.next
	}
	if f != nil && f.refused == refused {
		return f
	}
	return nil
}

// updateWatching sets watching while an acceptance means something: a wait is under way or due,
// or a token a wait outlived has not been accepted since, or has calls taken for refused, or calls
// are learnt, which an acceptance of theirs forgets. s.mu must be held.
func (s *Source) updateWatching() {
	f := s.flight
	s.watching.Store(f != nil && (f.refused != "" || f.next != nil) ||
		s.outlived.Reveal() != "" && (!s.acceptedAfter || len(s.outlivedCalls) > 0) || len(s.learnt) > 0)
}

// callRefusedError is the answer to a refusal Clear gave for a reason of the call's own (known).
// s.mu must be held.
func (s *Source) callRefusedError(t Token) error {
	if !s.acceptedAfter {
		return &Error{Kind: KindNoNewer, SecretID: s.secretID, VersionID: t.VersionID, callRefused: true, unconfirmed: true,
			detail: "two whole waits ended with the token Clear refused for this call still in AWSCURRENT, and Clear has accepted it for no call since: it may have been revoked outside the rotator, or the call is refused whatever the token"}
	}
	return &Error{Kind: KindNoNewer, SecretID: s.secretID, VersionID: t.VersionID, callRefused: true,
		detail: "Clear refused this call with the token AWSCURRENT holds, which it accepts for other calls: it refuses the call for a reason of its own (the API client may lack its product)"}
}

// acceptedMeanwhile ends f's wait when Clear accepted the refused token for a request sent after
// the wait began (accepted): the token is not revoked, no newer one is coming, and the calls
// refused were refused for reasons of their own. The token is cached as read now, and the refused
// callers get their 401 at once.
func (s *Source) acceptedMeanwhile(f *flight) (Token, error) {
	s.mu.Lock()
	t := s.cur
	if t.Value() == f.refused {
		s.readAt = s.now()
	}
	s.outlive(f, false)
	s.acceptedAgain()
	// Not a wait of a call taken only as learnt: its refusals may all have been an incident of
	// Clear's that the acceptance came after (it was learnt in it, across a rotation).
	for i := range s.outlivedCalls {
		if c := s.outlivedCalls[i].call; has(f.calls, c) && f.confirms && !f.unjudged {
			s.outlivedCalls[i].confirmed = true
			s.learn(c)
		}
	}
	s.updateWatching()
	err := s.callRefusedError(t)
	s.mu.Unlock()
	s.log.Debug("cleartoken: Clear accepted the refused token for a later request; the refusal was of the call", "secret_id", s.secretID, "version_id", t.VersionID)
	return Token{}, err
}

// refusal records, for the flight f a caller joins, that Clear refused call with the token
// refused. A call Clear refuses with that token for a reason of its own (known) holds only
// itself; any other makes the wait hold every call made during it. When f is a plain read
// and the cached token is the one refused, the wait is f's next. s.mu must be held.
func (s *Source) refusal(f *flight, refused string, by refuser) {
	if f.refused == "" && refused == s.cur.Value() {
		if f.next == nil {
			f.next = s.newFlight(refused)
			s.updateWatching()
		}
		f = f.next
	}
	if f.refused != refused {
		return // a wait for the successor of another token: the caller goes round after it
	}
	// Taken on an acceptance of the token since a whole wait after its own refusal: only then can
	// a whole wait of its own judge it (outlive). Not when taken as learnt with an earlier token.
	onAcceptance := s.acceptedAfter && f.refused == s.outlived.Reveal() &&
		slices.ContainsFunc(s.outlivedCalls, func(k outlivedCall) bool { return k.call.Is(by.call.Method, by.call.Path) })
	if taken, _ := s.known(f.refused, by.call); !taken {
		f.holds = true
	} else {
		f.judging = true
		f.unjudged = f.unjudged || !onAcceptance
	}
	if !has(f.calls, by.call) && len(f.calls) < maxCalls {
		f.calls = append(f.calls, by.call)
	}
	// Only a request sent after the last refusal, and accepted, shows the token was not revoked
	// before that refusal.
	f.seq = max(f.seq, by.seq)
	f.lastRefusal = s.now()
}

// known reports whether call is taken for one Clear refuses with the token refused for a reason of
// its own: a whole wait showed AWSCURRENT still held the token after Clear refused call with it,
// and Clear has since accepted the token for a later request, or a second wait ended so too.
// Refused's zero call is no exception: one wait is no proof. A call found is moved to the end of
// the calls, the most recently used. s.mu must be held.
//
// proven says more: the call's own refusal was judged, by a wait after it that an acceptance of
// the token for a later request ended (confirmed), or by a whole wait of its own, begun while it
// was taken, during which no other call was refused (judged); or it outlived two whole waits with
// no acceptance between them, and Clear has accepted the token for no request since (at the first
// acceptance such waits count once: acceptedAgain). Only a proven call gets its 401 at once; one
// taken on the word of acceptances of other calls after a wait (after an incident of Clear's
// refusing everything, say) still waits, holding no other call, until Clear accepts the token for
// a later request or a newer token comes.
func (s *Source) known(refused string, call apicall.Call) (taken, proven bool) {
	if refused == "" {
		return false, false
	}
	i := slices.IndexFunc(s.outlivedCalls, func(k outlivedCall) bool { return k.call.Is(call.Method, call.Path) })
	if refused == s.outlived.Reveal() && i >= 0 {
		k := s.outlivedCalls[i]
		// Two whole waits not separated by an acceptance are proof only while Clear accepts the
		// token for nothing: once it accepts it again, they count once (accepted).
		proven = k.confirmed || k.judged || k.waits >= 2
		if s.acceptedAfter || proven {
			s.outlivedCalls = append(slices.Delete(s.outlivedCalls, i, i+1), k)
			return true, proven
		}
	}
	// A call proven refused with an earlier token is taken with the token cached now: Clear refuses
	// it whatever the token, most likely, but its refusal may be this token's revocation too.
	return call != (apicall.Call{}) && refused == s.cur.Value() && has(s.learnt, call), false
}

// refusedWithNewer tells the Source that Clear refused c again when it was retried with a token
// newer than the one it refused first: refused whatever the token, most likely (the gateway's
// RefusedWhateverTheToken), so c is taken for refused with the next tokens (learnt). With tokens
// shorter than a wait, each first wait for such a call ends with the next token, and nothing else
// would ever judge it. Not while the newer token is refused for other calls too (a wait for its
// successor under way): that is no evidence about c.
func (s *Source) refusedWithNewer(c apicall.Call, newer Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waitingFor(newer.Value()) != nil {
		return
	}
	s.learn(c)
	s.updateWatching()
}

// learn records that Clear refused c for a reason of its own (Source.learnt). s.mu must be held.
func (s *Source) learn(c apicall.Call) {
	if c == (apicall.Call{}) {
		return
	}
	s.learnt = append(slices.DeleteFunc(s.learnt, func(k apicall.Call) bool { return k.Is(c.Method, c.Path) }), c)
	if n := len(s.learnt); n > maxCalls {
		s.learnt = s.learnt[n-maxCalls:]
	}
}

// holding reports whether a wait for the successor of refused that holds every call is under way
// (or will be, after the plain read in progress). s.mu must be held.
func (s *Source) holding(refused string) bool {
	f := s.flight
	if f != nil && f.next != nil {
		f = f.next
	}
	return f != nil && f.refused == refused && f.holds
}

// outlive records that AWSCURRENT still held f's refused token at the end of the wait: the calls
// refused during it are refused for reasons of their own. Only when the last read found the token:
// a read that failed shows nothing about what AWSCURRENT holds. whole: the wait ran to its end,
// not ended by an acceptance; only such a wait judges its calls (outlivedCall.judged). s.mu must
// be held.
func (s *Source) outlive(f *flight, whole bool) {
	if s.outlived.Reveal() != f.refused {
		s.outlived, s.outlivedCalls = sec.NewAccessToken(f.refused), nil
	}
	// Only an acceptance of a request sent from now on shows the token is not revoked.
	s.outlivedSeq, s.acceptedAfter = s.sent.Load(), false
	s.updateWatching()
	for _, c := range f.calls {
		i := slices.IndexFunc(s.outlivedCalls, func(k outlivedCall) bool { return k.call.Is(c.Method, c.Path) })
		k := outlivedCall{call: c}
		if i >= 0 {
			k = s.outlivedCalls[i]
			s.outlivedCalls = slices.Delete(s.outlivedCalls, i, i+1)
		}
		k.waits++
		k.judged = k.judged || whole && i >= 0 && f.judging && !f.holds && !f.unjudged
		s.outlivedCalls = append(s.outlivedCalls, k)
	}
	if n := len(s.outlivedCalls); n > maxCalls {
		s.outlivedCalls = s.outlivedCalls[n-maxCalls:]
	}
}

// has reports whether calls holds c (apicall.Call.Is: an id in the path stands for any id).
func has(calls []apicall.Call, c apicall.Call) bool {
	for _, k := range calls {
		if k.Is(c.Method, c.Path) {
			return true
		}
	}
	return false
}
