package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/gateway"
)

func fmtV(v any) string { return fmt.Sprintf("%v %+v %#v %s %q %x", v, v, v, v, v, v) }

func TestJudge(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Hour), now.Add(-time.Second)
	for name, tc := range map[string]struct {
		r    gateway.Refusal
		want gateway.Verdict
	}{
		"AWSCURRENT moved on":              {gateway.Refusal{Version: "v1", Accepted: true, Current: "v2", ValidTill: &later, Now: now}, gateway.Replaced},
		"moved on, never accepted":         {gateway.Refusal{Version: "v1", Current: "v2", Now: now}, gateway.Replaced},
		"expired under way":                {gateway.Refusal{Version: "v1", Accepted: true, Current: "v1", ValidTill: &earlier, Now: now}, gateway.Expired},
		"never accepted":                   {gateway.Refusal{Version: "v1", Current: "v1", ValidTill: &later, Now: now}, gateway.NeverAccepted},
		"accepted, current, live: revoked": {gateway.Refusal{Version: "v1", Accepted: true, Current: "v1", ValidTill: &later, Now: now}, gateway.Revoked},
		"never expires, revoked":           {gateway.Refusal{Version: "v1", Accepted: true, Current: "v1", Now: now}, gateway.Revoked},
		"AWSCURRENT unreadable as empty":   {gateway.Refusal{Version: "v1", Accepted: true, Current: "", Now: now}, gateway.Replaced},
		"accepted for a later call: the call is refused, not the token": {
			gateway.Refusal{Version: "v1", Accepted: true, AcceptedAfter: true, Current: "v1", ValidTill: &later, Now: now}, gateway.CallRefused},
		"accepted later, moved on": {gateway.Refusal{Version: "v1", Accepted: true, AcceptedAfter: true, Current: "v2", Now: now}, gateway.Replaced},
		"accepted later, expired":  {gateway.Refusal{Version: "v1", Accepted: true, AcceptedAfter: true, Current: "v1", ValidTill: &earlier, Now: now}, gateway.Expired},
	} {
		if got := gateway.Judge(tc.r); got != tc.want {
			t.Errorf("%s: %s, want %s", name, got, tc.want)
		}
	}
	if a, b, c := gateway.EventID("abc"), gateway.EventID("abd"), gateway.EventID("abc"); a == b || a != c {
		t.Error("EventID is not a function of the version")
	}
}

func TestRefusedWhateverTheToken(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Hour), now.Add(-time.Second)
	for name, tc := range map[string]struct {
		r    gateway.Replay
		want bool
	}{
		"refused with a newer token, never refused before: the call": {gateway.Replay{Refused: "v1", Version: "v2", ValidTill: &later, Now: now}, true},
		"no expiry known":                 {gateway.Replay{Refused: "v1", Version: "v2", Now: now}, true},
		"the same token: says nothing":    {gateway.Replay{Refused: "v1", Version: "v1", ValidTill: &later, Now: now}, false},
		"no token":                        {gateway.Replay{Refused: "v1", Now: now}, false},
		"the newer token ran out":         {gateway.Replay{Refused: "v1", Version: "v2", ValidTill: &earlier, Now: now}, false},
		"the newer token refused before":  {gateway.Replay{Refused: "v1", Version: "v2", VersionRefused: true, ValidTill: &later, Now: now}, false},
		"refused before, and ran out too": {gateway.Replay{Refused: "v1", Version: "v2", VersionRefused: true, ValidTill: &earlier, Now: now}, false},
	} {
		if got := gateway.RefusedWhateverTheToken(tc.r); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}
