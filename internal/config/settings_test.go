package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/safefile"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// TestSettingsTable checks that the table knows every variable the package
// reads, once, and every key a client entry accepts.
func TestSettingsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Settings {
		if seen[s.Env] {
			t.Errorf("%s is in the table twice", s.Env)
		}
		seen[s.Env] = true
		if s.Help == "" || s.Kind == "" {
			t.Errorf("%s lacks help or kind", s.Env)
		}
		if (s.Key != "") != (s.Scope == PerClient) {
			t.Errorf("%s: a YAML key exactly for per-client settings", s.Env)
		}
		// A row that is parsed stores its value in exactly the place its scope says.
		if s.Parse != nil && (s.Set == nil || s.Set(&Client{}, nil) != (s.Scope == PerClient) || s.Set(&Config{}, nil) == (s.Scope == PerClient)) {
			t.Errorf("%s: a parsed setting needs a client setter (per client) or a config setter (global), not both", s.Env)
		}
		if s.Parse == nil && (s.Set != nil || s.Default != nil) {
			t.Errorf("%s: a setter or a default without parse", s.Env)
		}
	}
	first := map[string]Setting{}
	for _, s := range Settings {
		if f, ok := first[s.Group]; s.Group != "" && ok && (s.Scope != f.Scope || s.Required != "") {
			t.Errorf("%s: a group shares one scope, and only its first row says Required", s.Env)
		} else if !ok {
			first[s.Group] = s
		}
	}
	for _, name := range []string{EnvBaseURL, EnvClientSecret, EnvClientSecretID, EnvClientSecret2, EnvClientSecretID2,
		EnvTokenSecretID, EnvDailyLimit, EnvRenewBefore, EnvMaxAge, EnvConfig, EnvSchedule, EnvHTTPAddr,
		EnvShutdownGrace, EnvClearTimeout, EnvLogLevel, EnvLogFormat, EnvNoColor} {
		if !seen[name] {
			t.Errorf("%s is not in the table", name)
		}
	}
	if DefaultShutdownGrace != timing.Lease(DefaultClearTimeout) {
		t.Errorf("DefaultShutdownGrace = %s, want timing.Lease(DefaultClearTimeout) = %s", DefaultShutdownGrace, timing.Lease(DefaultClearTimeout))
	}
}

func TestUnknown(t *testing.T) {
	got := Unknown([]string{
		"ROTATOR_DAILY_LIMT=100", "CLEAR_TIMOUT=5s", "CLEAR_BASE_URL=https://x", "PATH=/bin",
		"ROTATOR_BIN=/x", "ROTATOR_TEST_BIN=/y", "ROTATOR_WHATEVER_THIS_IS=1", "CLEAR_TIMOUT=again", "rotator_daily_limit=1",
		"CLEAR_CLIENT_SECRET_2=" + secretA, "CLEAR_CLIENT_SECERT=" + secretB, "NO_COLOR=1",
		// What the rotator gives its hook command, which may run rotator itself.
		"CLEAR_ROTATOR_VERSION_ID=v1", "CLEAR_ROTATOR_CLIENT=erp", "CLEAR_ROTATOR_EVENT_ID=e",
	})
	want := []Warning{
		{Name: "CLEAR_CLIENT_SECERT", Suggestion: EnvClientSecret},
		{Name: "CLEAR_TIMOUT", Suggestion: EnvClearTimeout},
		{Name: "ROTATOR_DAILY_LIMT", Suggestion: EnvDailyLimit},
		{Name: "ROTATOR_WHATEVER_THIS_IS", Suggestion: ""},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Unknown = %v\nwant %v", got, want)
	}
	for _, w := range got {
		if s := w.String(); strings.Contains(s, secretB) || !strings.Contains(s, w.Name) {
			t.Errorf("warning %q", s)
		}
	}
	if s := got[2].String(); s != "unknown environment variable ROTATOR_DAILY_LIMT is ignored; did you mean ROTATOR_DAILY_LIMIT?" {
		t.Errorf("String() = %q", s)
	}
	if Unknown(nil) != nil {
		t.Error("warnings for an empty environment")
	}
}

// TestScheduleThatNeverFires: a spec that never fires is refused at load, with timing's reason
// (timing.TestScheduleThatNeverFires tests the parser itself).
func TestScheduleThatNeverFires(t *testing.T) {
	_, err := Load(env(with(minimalEnv, EnvSchedule, "0 0 30 2 *")))
	wantErrors(t, err, `ROTATOR_SCHEDULE "0 0 30 2 *" is not a valid schedule: it never fires`)
}

// TestBaseURLNeverEchoesUserInfoOrQuery: a base URL's user info and query may
// carry credentials; no configuration error may repeat them, whichever way
// the client secret is given.
func TestBaseURLNeverEchoesUserInfoOrQuery(t *testing.T) {
	const user, pw, query = "alice-user-7q", "pw-9x7z3k", "k=v-key-5j2"
	urls := []string{
		"https://" + user + ":" + pw + "@host.example.com/?" + query,
		"https://" + user + ":" + pw + "@host.example.com",
		"https://host.example.com/?" + query,
		"https://host.example.com/#" + query,
		"http://" + user + ":" + pw + "@remote.example.com/x?" + query,
		"ftp://host.example.com/?" + query,
		"https://" + user + "@@" + pw + "@/?" + query,
		"https://host.example.com:99999999/?" + query,
		"https:/" + user + ":" + pw + "@host.example.com",
		user + ":" + pw + "@host.example.com/?" + query,
	}
	for i, u := range urls {
		for _, e := range []map[string]string{
			with(minimalEnv, EnvBaseURL, u),
			with(minimalEnv, EnvBaseURL, u, EnvClientSecretID, unset, EnvClientSecret, secretA),
		} {
			_, err := Load(env(e))
			if err == nil {
				t.Fatalf("%d: %s accepted", i, u)
			}
			y := "clients:\n  - {name: a, base_url: '" + u + "', client_secret_id: c, token_secret_id: t}\n"
			_, yerr := Parse([]byte(y), "f.yaml", nil)
			for _, err := range []error{err, yerr} {
				var texts []string
				texts = append(texts, err.Error(), fmt.Sprintf("%+v", err))
				for _, e := range problemsOf(t, err) {
					for c := e.Err; c != nil; c = errors.Unwrap(c) {
						texts = append(texts, c.Error())
					}
				}
				for _, text := range texts {
					for _, s := range []string{user, pw, query} {
						if strings.Contains(text, s) {
							t.Errorf("%d: error echoes %q:\n%s", i, s, text)
						}
					}
				}
			}
		}
	}
	// What is left is still useful: the host to fix.
	_, err := Load(env(with(minimalEnv, EnvBaseURL, urls[0])))
	wantErrors(t, err, "host.example.com", "must not contain a user name or password")
}

func TestRenewalSettingsRefused(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{with(minimalEnv, EnvMaxAge, "1s"), "ROTATOR_MAX_AGE 1s is below 1m0s, the least time between two rotations"},
		{with(minimalEnv, EnvMaxAge, "59s"), "is below 1m0s"},
		{with(minimalEnv, EnvMaxAge, "100000h"), "ROTATOR_MAX_AGE 100000h is absurdly long"},
		{with(minimalEnv, EnvRenewBefore, "-1h"), "ROTATOR_RENEW_BEFORE -1h must be greater than zero"},
		{with(minimalEnv, EnvRenewBefore, "9000h"), "ROTATOR_RENEW_BEFORE 9000h is absurdly long"},
		{with(minimalEnv, EnvMaxAge, "10m"), "ROTATOR_MAX_AGE 10m0s means 144 rotations a day, more than the daily limit of 48 requests allows; set it to at least 30m0s"},
		{with(minimalEnv, EnvMaxAge, "3h", EnvDailyLimit, "7"), "set it to at least 3h26m0s"},
		// A day that does not divide evenly still needs its last rotation: 49 at 29m59s.
		{with(minimalEnv, EnvMaxAge, "29m59s"), "ROTATOR_MAX_AGE 29m59s means 49 rotations a day, more than the daily limit of 48"},
		{with(minimalEnv, EnvMaxAge, "12h1m", EnvDailyLimit, "1"), "means 2 rotations a day, more than the daily limit of 1"},
		{with(minimalEnv, EnvMaxAge, "5m45s", EnvDailyLimit, "250"), "more than the daily limit of 250"},
	} {
		_, err := Load(env(tc.env))
		wantErrors(t, err, tc.want)
	}
	for _, e := range []map[string]string{
		with(minimalEnv, EnvMaxAge, "30m"),
		with(minimalEnv, EnvMaxAge, "1m", EnvDailyLimit, "250", EnvRenewBefore, "8784h"),
		with(minimalEnv, EnvMaxAge, "3h26m", EnvDailyLimit, "7"),
		with(minimalEnv, EnvMaxAge, "24h", EnvDailyLimit, "1"),
	} {
		if _, err := Load(env(e)); err != nil && !strings.Contains(err.Error(), "rotations a day") {
			t.Errorf("%v: %v", e, err)
		} else if err != nil && e[EnvDailyLimit] != "250" {
			t.Errorf("%v refused: %v", e, err)
		}
	}
	// The budget rule applies per entry, with inherited values.
	_, err := Parse([]byte("clients:\n  - {name: a, client_secret_id: c, token_secret_id: t, daily_limit: 4}\n"), "f.yaml",
		env(map[string]string{EnvBaseURL: "https://a.example.com", EnvMaxAge: "1h"}))
	wantErrors(t, err, `client "a": max_age (from ROTATOR_MAX_AGE) 1h0m0s means 24 rotations a day, more than the daily limit of 4`)
}

func TestShutdownGraceFloorAndDefault(t *testing.T) {
	cfg, err := Load(env(with(minimalEnv, EnvClearTimeout, "5s")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ShutdownGrace != timing.Lease(5*time.Second) {
		t.Errorf("default grace with a 5s timeout = %s, want %s", cfg.ShutdownGrace, timing.Lease(5*time.Second))
	}
	_, err = Load(env(with(minimalEnv, EnvShutdownGrace, "2s")))
	wantErrors(t, err, "ROTATOR_SHUTDOWN_GRACE 2s is below 1m0s (CLEAR_TIMEOUT 30s plus 30s to store the token)", "lose a token")
	_, err = Load(env(with(minimalEnv, EnvShutdownGrace, "34s", EnvClearTimeout, "5s")))
	wantErrors(t, err, "is below 35s")
	if cfg, err := Load(env(with(minimalEnv, EnvShutdownGrace, "35s", EnvClearTimeout, "5s"))); err != nil || cfg.ShutdownGrace != 35*time.Second {
		t.Errorf("grace at the floor: %v", err)
	}
}

// TestRangeLimits checks every row whose Limits is a range "LO..HI": both bounds are accepted, a
// value just beyond either is refused, and the refusal of one above says the range as the docs
// do.
func TestRangeLimits(t *testing.T) {
	n := 0
	for _, s := range Settings {
		lo, hi, ok := strings.Cut(s.Limits, "..")
		if !ok || s.Parse == nil || strings.ContainsAny(s.Limits, " ,") {
			continue
		}
		n++
		var below, above string
		if s.Kind == "duration" {
			l, err1 := time.ParseDuration(lo)
			h, err2 := time.ParseDuration(hi)
			if err1 != nil || err2 != nil {
				t.Errorf("%s: the limits %q are not two durations", s.Env, s.Limits)
				continue
			}
			below, above = (l - time.Nanosecond).String(), (h + time.Nanosecond).String()
		} else {
			l, err1 := strconv.ParseInt(lo, 10, 64)
			h, err2 := strconv.ParseInt(hi, 10, 64)
			if err1 != nil || err2 != nil {
				t.Errorf("%s: the limits %q are not two numbers", s.Env, s.Limits)
				continue
			}
			below, above = strconv.FormatInt(l-1, 10), strconv.FormatInt(h+1, 10)
		}
		for _, v := range []string{lo, hi} {
			if _, err := s.Parse(v); err != nil {
				t.Errorf("%s=%s, a bound of %s, was refused: %v", s.Env, v, s.Limits, err)
			}
		}
		if _, err := s.Parse(below); err == nil {
			t.Errorf("%s=%s, below %s, was accepted", s.Env, below, s.Limits)
		}
		if _, err := s.Parse(above); err == nil || !strings.Contains(err.Error(), s.Limits) {
			t.Errorf("%s=%s, above %s, was not refused with the range: %v", s.Env, above, s.Limits, err)
		}
	}
	if n < 10 {
		t.Errorf("only %d rows have a range; the test's filter is wrong", n)
	}
}

// TestDurationCeilings pins the upper bounds of renew_before and max_age, which catch a unit
// mistake that would silently mean "never".
func TestDurationCeilings(t *testing.T) {
	for _, c := range []struct{ env, at, over, want string }{
		{EnvRenewBefore, "8784h", "8784h0m1s", "at most 8784h0m0s (366 days)"},
		{EnvMaxAge, "87840h", "87840h0m1s", "at most 87840h0m0s (ten years)"},
	} {
		if _, err := Load(env(with(minimalEnv, c.env, c.at))); err != nil {
			t.Errorf("%s=%s refused: %v", c.env, c.at, err)
		}
		_, err := Load(env(with(minimalEnv, c.env, c.over)))
		wantErrors(t, err, c.env+" "+c.over+" is absurdly long; "+c.want)
	}
}

// TestRenewBeforeFloor: a renewal started with less validity left than a Clear request and the
// write of its answer take hands ERP systems an expired token at every rotation, and leaves no time
// to retry one that failed. The floor is timing.Lease(CLEAR_TIMEOUT), per client, entries' values
// and inherited ones alike; at the floor it is accepted.
func TestRenewBeforeFloor(t *testing.T) {
	_, err := Load(env(with(minimalEnv, EnvRenewBefore, "59s")))
	wantErrors(t, err, "ROTATOR_RENEW_BEFORE 59s is below 1m0s (CLEAR_TIMEOUT 30s plus 30s to store the token)", "expired")
	if cfg, err := Load(env(with(minimalEnv, EnvRenewBefore, "1m"))); err != nil || cfg.Clients[0].RenewBefore != time.Minute {
		t.Errorf("renew_before at the floor: %v", err)
	}
	_, err = Load(env(with(minimalEnv, EnvRenewBefore, "2m", EnvClearTimeout, "91s")))
	wantErrors(t, err, "ROTATOR_RENEW_BEFORE 2m0s is below 2m1s")
	_, err = Parse([]byte("clients:\n  - {name: a, client_secret_id: c, token_secret_id: t, renew_before: 10s}\n"), "f.yaml",
		env(map[string]string{EnvBaseURL: "https://a.example.com"}))
	wantErrors(t, err, `f.yaml:2: client "a": renew_before 10s is below 1m0s`)
}

// TestConfigNotARegularFile: a FIFO as ROTATOR_CONFIG used to hang Load in
// the read until some other process wrote to the pipe.
func TestConfigNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Load(env(map[string]string{EnvConfig: fifo}))
		done <- err
	}()
	// No timeout: if the read blocks, the test binary's own deadline reports it.
	err := <-done
	wantErrors(t, err, "ROTATOR_CONFIG names a file that cannot be read", "a named pipe (FIFO), not a regular file")
	if !errors.Is(err, safefile.ErrNotRegular) {
		t.Errorf("cause lost: %v", err)
	}
	_, err = Load(env(map[string]string{EnvConfig: dir}))
	wantErrors(t, err, "a directory, not a regular file")
	if _, statErr := os.Stat("/dev/zero"); statErr == nil {
		_, err = Load(env(map[string]string{EnvConfig: "/dev/zero"}))
		wantErrors(t, err, "a device, not a regular file")
	}
}

func TestSecondAPIClient(t *testing.T) {
	cfg, err := Load(env(with(minimalEnv, EnvClientSecretID2, "clear/client-secret-2")))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Clients[0]; c.ClientSecretID2 != "clear/client-secret-2" || !c.ClientSecret2.IsZero() {
		t.Errorf("client = %+v", c)
	}
	cfg, err = Load(env(with(minimalEnv, EnvClientSecretID, unset, EnvClientSecret, secretA, EnvClientSecret2, secretB)))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Clients[0]; c.ClientSecret2.Reveal() != secretB || c.ClientSecretID2 != "" {
		t.Errorf("literal slot 2 not kept")
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"both in slot 2", with(minimalEnv, EnvClientSecret2, secretB, EnvClientSecretID2, "x"),
			"CLEAR_CLIENT_SECRET_2 and CLEAR_CLIENT_SECRET_ID_2 are both set; set exactly one"},
		{"slot 2 alone", with(minimalEnv, EnvClientSecretID, unset, EnvClientSecretID2, "x"),
			"neither CLEAR_CLIENT_SECRET nor CLEAR_CLIENT_SECRET_ID is set"},
		{"same literal", with(minimalEnv, EnvClientSecretID, unset, EnvClientSecret, secretA, EnvClientSecret2, secretA),
			"CLEAR_CLIENT_SECRET_2 is the same client secret as this client's CLEAR_CLIENT_SECRET (value not shown)"},
		{"same id", with(minimalEnv, EnvClientSecretID2, "arn:aws:secretsmanager:ap-south-1:123456789012:secret:clear/client-secret-AbCdEf"),
			"CLEAR_CLIENT_SECRET_ID_2 refers to the same Secrets Manager secret as this client's CLEAR_CLIENT_SECRET_ID; the two API clients must have different client secrets"},
		{"slot 2 is the token", with(minimalEnv, EnvClientSecretID2, "clear/token"),
			"ROTATOR_TOKEN_SECRET_ID refers to the same secret as this client's CLEAR_CLIENT_SECRET_ID_2"},
		{"bad literal 2", with(minimalEnv, EnvClientSecret2, secretB+"\x01"), "CLEAR_CLIENT_SECRET_2 contains a control character"},
		{"bad id 2", with(minimalEnv, EnvClientSecretID2, secretB+"!"), "CLEAR_CLIENT_SECRET_ID_2 has a character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			wantErrors(t, err, tc.want)
		})
	}

	// In a file: inherited like the first slot, and shared with no other client.
	e := env(map[string]string{EnvBaseURL: "https://a.example.com", EnvClientSecretID2: "clear/second"})
	cfg, err = Parse([]byte("clients:\n  - {name: a, client_secret_id: c1, token_secret_id: t1}\n"), "f.yaml", e)
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Clients[0]; c.ClientSecretID2 != "clear/second" {
		t.Errorf("slot 2 not inherited: %+v", c)
	}
	_, err = Parse([]byte("clients:\n  - {name: a, client_secret_id: c1, token_secret_id: t1}\n  - {name: b, client_secret_id: c2, token_secret_id: t2}\n"), "f.yaml", e)
	wantErrors(t, err, `client "b": client_secret_id_2 (from CLEAR_CLIENT_SECRET_ID_2) refers to the same Secrets Manager secret as client "a"'s client_secret_id_2`)
	for _, tc := range []struct{ yaml, want string }{
		{"  - {name: a, client_secret_id: c1, client_secret_id_2: c2, token_secret_id: t1}\n  - {name: b, client_secret_id: c2, token_secret_id: t2}\n",
			`client "b": client_secret_id refers to the same Secrets Manager secret as client "a"'s client_secret_id_2`},
		{"  - {name: a, client_secret: " + secretA + ", client_secret_2: " + secretB + ", token_secret_id: t1}\n  - {name: b, client_secret: " + secretB + ", token_secret_id: t2}\n",
			`client "b": client_secret is the same client secret as client "a"'s client_secret_2 (value not shown)`},
		{"  - {name: a, client_secret: " + secretA + ", client_secret_2: " + secretA + ", token_secret_id: t1}\n",
			`client "a": client_secret_2 is the same client secret as this client's client_secret`},
		{"  - {name: a, client_secret_id: c1, client_secret_2: " + secretB + ", client_secret_id_2: c3, token_secret_id: t1}\n",
			`client "a": client_secret_2 and client_secret_id_2 are both set; set exactly one`},
		{"  - {name: a, client_secret_id: c1, client_secret_2: \"" + secretB + "\\u0001\", token_secret_id: t1}\n",
			`client "a": client_secret_2 contains a control character`},
	} {
		_, err := Parse([]byte("clients:\n"+tc.yaml), "f.yaml", env(map[string]string{EnvBaseURL: "https://a.example.com"}))
		wantErrors(t, err, tc.want)
	}
	// Slot 2's literal is scrubbed like the first's wherever it was pasted.
	_, err = Load(env(with(minimalEnv, EnvClientSecret2, secretB, EnvBaseURL, "https://"+secretB+".example.com/?x", EnvTokenSecretID, secretB+"?")))
	wantErrors(t, err)
}

func TestYAMLKeyHandling(t *testing.T) {
	full := "  - {name: a, base_url: https://a.example.com, client_secret_id: c, token_secret_id: t, "
	for _, tc := range []struct{ yaml, want string }{
		{full + "dialy_limit: 5}\n", `f.yaml:2: unknown key "dialy_limit" in a client entry; allowed keys: name, base_url`},
		{full + "dialy_limit: 5}\n", "(did you mean daily_limit?)"},
		{full + "client_secret_id_3: x}\n", "(did you mean client_secret_id_2?)"},
		{full + "[a]: 5}\n", "f.yaml:2: expected a plain key, found a list"},
		{full + "<<: 5}\n", "merge keys (<<) are not supported"},
		{"  - name: a\n    name: b\n", `f.yaml:3: key "name" is given twice (first at line 2)`},
	} {
		_, err := Parse([]byte("clients:\n"+tc.yaml), "f.yaml", nil)
		wantErrors(t, err, tc.want)
	}
	_, err := Parse([]byte("client:\n  - name: a\n"), "f.yaml", nil)
	wantErrors(t, err, `unknown top-level key "client"; the only allowed key is clients (did you mean clients?)`)
	_, err = Parse([]byte("clients: [1, true, ~]\n"), "f.yaml", nil)
	wantErrors(t, err, "found a number", "found a boolean", "client #3: the entry is empty")
	// A mapping merged into itself is a cycle in yaml.v3's node tree; it
	// used to overflow the stack, and merges of merges grew exponentially.
	// Merge keys are refused now, once per file.
	_, err = Parse([]byte("clients:\n  - &a {name: a, <<: *a}\n  - &b {name: b, <<: [*b]}\n"), "f.yaml", nil)
	probs := wantErrors(t, err, "f.yaml:2: merge keys (<<) are not supported")
	if strings.Count(err.Error(), "merge keys") != 1 {
		t.Errorf("%d problems:\n%v", len(probs), err)
	}
	laughs := "defs:\n  - &x0 {a: 1}\n"
	for i := 1; i <= 40; i++ {
		laughs += fmt.Sprintf("  - &x%d {<<: [*x%d, *x%d]}\n", i, i-1, i-1)
	}
	laughs += "clients:\n  - {<<: *x40, name: a}\n"
	_, err = Parse([]byte(laughs), "f.yaml", nil)
	wantErrors(t, err, "merge keys (<<) are not supported")
	// An alias of a mapping or a list is refused: only single values.
	_, err = Parse([]byte("clients:\n  - &a {name: a}\n  - *a\n  - {name: b, base_url: *a}\n"), "f.yaml", nil)
	wantErrors(t, err, "f.yaml:3: an alias (*a) stands for a mapping; an alias may stand only for a single value")
	_, err = Parse([]byte("x: &l [a]\nclients: *l\n"), "f.yaml", nil)
	wantErrors(t, err, "an alias (*l) stands for a list")
}

// TestClientSecretLiteralAsJSON: a literal client secret is parsed as a stored one is (one
// parser, secret.ParseClientSecret), so {"client_secret": "..."} gives the secret inside; and the
// secret inside is scrubbed from messages even when it is shorter than the scrub's window of the
// whole text (a name that echoes it here).
func TestClientSecretLiteralAsJSON(t *testing.T) {
	const inner = "in-json-9z8y" // 12 characters: no 16-character window of the JSON text is inside it
	cfg, err := Load(env(with(minimalEnv, EnvClientSecretID, unset, EnvClientSecret, `{"client_secret": "`+inner+`"}`)))
	if err != nil || cfg.Clients[0].ClientSecret.Reveal() != inner {
		t.Fatalf("Load = %v; want the client secret inside the JSON", err)
	}
	yaml := "clients:\n  - name: \"" + inner + "!\"\n    base_url: https://api.example.com\n    client_secret: '{\"client_secret\": \"" + inner + "\"}'\n    token_secret_id: t1\n"
	_, err = Parse([]byte(yaml), "f.yaml", nil)
	wantErrors(t, err, "name")
	if strings.Contains(err.Error(), inner) {
		t.Errorf("the client secret inside the JSON is shown:\n%s", err)
	}
}
