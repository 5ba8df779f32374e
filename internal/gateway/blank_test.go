package gateway

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/clear-rotator/clear-rotator/internal/secret"
)

// blanked gives what bytes.ReplaceAll would, however the body arrives: in one piece, a byte at a
// time, or in random pieces, the token at either end, split across reads, twice in a row, or
// overlapping itself ("aaab" in "aaaab").
func TestBlankedReplacesTheTokenAcrossReads(t *testing.T) {
	tok := []byte("tok-0123456789-abcdef")
	big := strings.Repeat("x", maxRefusalBody+100)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, body := range []string{
		"", "nothing here", string(tok), string(tok) + string(tok), "a" + string(tok) + "b",
		big + string(tok), string(tok) + big, big + string(tok[:5]), big + string(tok) + big + string(tok),
		strings.Repeat("tok-", 10000) + string(tok) + "tok-0123456789-abcde", // prefixes that do not finish
	} {
		want := bytes.ReplaceAll([]byte(body), tok, []byte(secret.Marker))
		for name, wrap := range map[string]func(io.Reader) io.Reader{
			"whole":  func(r io.Reader) io.Reader { return r },
			"bytes":  iotest.OneByteReader,
			"random": func(r io.Reader) io.Reader { return &randomReads{r: r, rng: rng} },
		} {
			h := http.Header{"Content-Length": {"123"}}
			got, err := io.ReadAll(blanked(h, wrap(strings.NewReader(body)), tok))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s, a body of %d bytes: got %d bytes (%v), want %d", name, len(body), len(got), err, len(want))
			}
			if cl := h.Get("Content-Length"); len(body) <= maxRefusalBody && cl != strconv.Itoa(len(want)) || len(body) > maxRefusalBody && cl != "" {
				t.Fatalf("%s, a body of %d bytes: Content-Length %q", name, len(body), cl)
			}
		}
	}
	// The overlapping case, small token.
	got, _ := io.ReadAll(&blanking{r: iotest.OneByteReader(strings.NewReader("aaaab")), tok: []byte("aaab")})
	if string(got) != "a"+secret.Marker {
		t.Fatalf("overlapping: %q", got)
	}
	// A read error does not let out a held-back start of the token.
	got, err := io.ReadAll(&blanking{r: io.MultiReader(strings.NewReader("ok "+string(tok[:10])), iotest.ErrReader(io.ErrUnexpectedEOF)), tok: tok})
	if err == nil || bytes.Contains(got, tok[:10]) {
		t.Fatalf("a broken body: %q, %v", got, err)
	}
}

type randomReads struct {
	r   io.Reader
	rng *rand.Rand
}

func (x *randomReads) Read(p []byte) (int, error) {
	return x.r.Read(p[:1+x.rng.IntN(len(p))])
}

// The listener as bound is checked too: beyond loopback without a key is refused, whatever the
// configured host name resolved to.
func TestKeyedOffLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr  net.Addr
		keyed bool
		ok    bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8480}, false, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8480}, false, true},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8480}, false, false},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8480}, false, false},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 8480}, false, false},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 8480}, true, true},
		{&net.UnixAddr{Name: "/tmp/gw.sock", Net: "unix"}, false, false},
	} {
		if err := keyedOffLoopback(tc.addr, tc.keyed); (err == nil) != tc.ok {
			t.Errorf("%s, keyed %v: %v", tc.addr, tc.keyed, err)
		}
	}
}
