package main

import (
	"fmt"
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
