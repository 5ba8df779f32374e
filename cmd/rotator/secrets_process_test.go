package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/emulator"
	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// invisibles are the format characters issue 19 (item 8) found passing through from Clear's error
// text: zero-width space, non-joiner, joiner, word joiner, byte order mark, soft hyphen, Mongolian
// vowel separator, and tag characters (the whole block U+E0000-U+E007F, assigned or not).
var invisibles = []rune{0x200b, 0x200c, 0x200d, 0x2060, 0xfeff, 0x00ad, 0x180e, 0xe0000, 0xe0001, 0xe0041, 0xe007f}

// TestProcessInvisibleCharactersFromClearBecomeSpaces runs the rotator against a Clear whose error
// message is sprinkled with invisible format characters, and looks for them everywhere the message
// goes: rotate's output and logs, status (text and JSON), and the state document every reader of
// the token secret sees. The README promises they become spaces.
func TestProcessInvisibleCharactersFromClearBecomeSpaces(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour})
	var msg strings.Builder
	msg.WriteString("boom")
	for _, r := range invisibles {
		msg.WriteRune(r)
		msg.WriteString("x")
	}
	w.Emu.Inject(emulator.Fault{Status: 500, Message: msg.String()})
	outputs := map[string]string{}
	r := w.Rotator("rotate")
	wantCode(t, r, 1, "boom")
	outputs["rotate"] = r.Output()
	outputs["status"] = w.Rotator("status").Output()
	outputs["status --json"] = w.Rotator("status", "--json").Output()
	state, _, ok := w.Read(document.StateStage)
	if !ok {
		t.Fatal("no state version")
	}
	outputs["the state"] = state
	for where, out := range outputs {
		if !strings.Contains(out, "boom") {
			t.Errorf("%s does not show Clear's message:\n%s", where, out)
		}
		for _, c := range invisibles {
			// The JSON outputs may escape a character instead of carrying it raw.
			if strings.ContainsRune(out, c) || strings.Contains(strings.ToLower(out), fmt.Sprintf(`\u%04x`, c)) {
				t.Errorf("%s carries U+%04X from Clear's message:\n%s", where, c, out)
			}
		}
		if !utf8.ValidString(out) {
			t.Errorf("%s is not valid UTF-8", where)
		}
	}
}

// clearShaped returns a random client secret shaped like Clear's (its documentation's sample is 88
// characters of base64), with a / and a + where URL encoding changes them.
func clearShaped() string {
	b := make([]byte, 64)
	_, _ = rand.Read(b)
	s := base64.StdEncoding.EncodeToString(b)
	return s[:5] + "/" + s[6:20] + "+" + s[21:]
}

// TestProcessClientSecretSpellingsAreRedacted is issue 19 item 13: a Clear error that echoes the
// client secret in another spelling than the one sent (URL-encoded, upper- or lower-case, split by
// zero-width characters, cut to 20 characters, JSON-escaped) must not carry it into rotate's output
// and logs, status, or the state document. The rig's leak scan looks for the same spellings.
func TestProcessClientSecretSpellingsAreRedacted(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour, Secrets: []string{clearShaped()}})
	sec := w.Secrets[0]
	spellings := map[string]string{
		"URL-encoded":      url.QueryEscape(sec),
		"upper-case":       strings.ToUpper(sec),
		"lower-case":       strings.ToLower(sec),
		"zero-width split": sec[:30] + "\u200b" + sec[30:60] + "\u2060" + sec[60:],
		"cut to 20":        sec[:20],
		"a middle piece":   sec[40:60],
		"JSON-escaped":     strings.ReplaceAll(sec, "/", `\/`),
	}
	for name, spelled := range spellings {
		w.Emu.Inject(emulator.Fault{Status: 500, Message: "echo " + spelled + " end"})
		r := w.Rotator("rotate", "--force")
		wantCode(t, r, 1, "echo ")
		state, _, _ := w.Read(document.StateStage)
		for where, out := range map[string]string{"rotate": r.Output(), "status": w.Rotator("status", "--json").Output(), "the state": state} {
			// Every 20-character piece of the secret, in the spelling that was echoed and in plain.
			for _, text := range []string{spelled, sec, strings.ToUpper(sec), strings.ToLower(sec)} {
				for i := 0; i+20 <= len(text); i += 10 {
					if piece := text[i : i+20]; strings.Contains(out, piece) {
						t.Errorf("%s spelling: %s carries a piece of the client secret", name, where)
					}
				}
			}
			if !strings.Contains(out, "echo") {
				t.Errorf("%s spelling: %s lost Clear's message:\n%s", name, where, out)
			}
		}
	}
}

// TestProcessTokenSpellingTheClientSecretIsRefused is issue 19 item 13's worse half: a 200 whose
// access_token is the client secret, or carries a piece of it, was stored in AWSCURRENT for every
// ERP to read. It is a malformed answer: refused, never stored, and the good token stays.
func TestProcessTokenSpellingTheClientSecretIsRefused(t *testing.T) {
	w := world(t, rig.Options{Lifetime: time.Hour, Secrets: []string{clearShaped()}})
	sec := w.Secrets[0]
	wantCode(t, w.Rotator("rotate"), 0, "rotated")
	good, goodID := w.MustCurrent()
	for _, tok := range []string{sec, "1." + sec[10:40] + "_4d05f5b0", strings.ToLower(sec[:30])} {
		body, _ := json.Marshal(map[string]any{"access_token": tok, "valid_till": nil})
		w.Emu.Inject(emulator.Fault{Body: string(body)})
		wantCode(t, w.Rotator("rotate", "--force"), 1, "malformed")
		now, nowID := w.MustCurrent()
		if nowID != goodID || now.AccessToken.Reveal() != good.AccessToken.Reveal() {
			t.Fatalf("a token spelling the client secret replaced the stored token")
		}
	}
}
