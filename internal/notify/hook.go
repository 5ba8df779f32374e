package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/clear-rotator/clear-rotator/internal/clear"
	"github.com/clear-rotator/clear-rotator/internal/document"
	"github.com/clear-rotator/clear-rotator/internal/secret"
)

// DefaultHookTimeout bounds one run of the hook command.
const DefaultHookTimeout = 30 * time.Second

// maxOutput is how much of a hook's output is kept for the log.
const maxOutput = 4 << 10

// The hook's environment, beside the rotator's own (less its secrets, see HookEnv).
const (
	EnvClient     = "CLEAR_ROTATOR_CLIENT"
	EnvSecretID   = "CLEAR_ROTATOR_SECRET_ID"
	EnvVersionID  = "CLEAR_ROTATOR_VERSION_ID"
	EnvValidTill  = "CLEAR_ROTATOR_VALID_TILL"
	EnvAPIClient  = "CLEAR_ROTATOR_API_CLIENT"
	EnvIssuedAt   = "CLEAR_ROTATOR_ISSUED_AT"
	EnvReason     = "CLEAR_ROTATOR_REASON"
	EnvEventID    = "CLEAR_ROTATOR_EVENT_ID"
	stdinTokenArg = "token"
)

// SplitCommand splits a hook command into arguments, without a shell: words are separated by white
// space; 'single quotes' keep everything inside as is; "double quotes" keep everything but \" and
// \\, which stand for " and \; outside quotes a backslash keeps the next character. There is no
// expansion of variables, globs, pipes or redirections: a hook that wants them says so, as
// `sh -c '...'`.
func SplitCommand(s string) ([]string, error) {
	var sp splitter
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		var err error
		if i, err = sp.step(rs, i); err != nil {
			return nil, err
		}
	}
	if sp.quote != 0 {
		return nil, fmt.Errorf("has an unterminated %c quote", sp.quote)
	}
	sp.end()
	if len(sp.args) == 0 {
		return nil, errors.New("is empty")
	}
	return sp.args, nil
}

// splitter is SplitCommand's state: the words so far, the one being read, and the open quote.
type splitter struct {
	args  []string
	cur   strings.Builder
	inArg bool
	quote rune
}

func (sp *splitter) end() {
	if sp.inArg {
		sp.args, sp.inArg = append(sp.args, sp.cur.String()), false
		sp.cur.Reset()
	}
}

// step reads rs[i] (and the character it escapes) and returns the index of the last one read.
func (sp *splitter) step(rs []rune, i int) (int, error) {
	r := rs[i]
	switch {
	case sp.quote == '\'':
		if r == '\'' {
			sp.quote = 0
		} else {
			sp.cur.WriteRune(r)
		}
	case sp.quote == '"':
		switch {
		case r == '"':
			sp.quote = 0
		case r == '\\' && i+1 < len(rs) && (rs[i+1] == '"' || rs[i+1] == '\\'):
			i++
			sp.cur.WriteRune(rs[i])
		default:
			sp.cur.WriteRune(r)
		}
	case r == '\'' || r == '"':
		sp.quote, sp.inArg = r, true
	case r == '\\':
		if i+1 == len(rs) {
			return i, errors.New("ends with a lone backslash")
		}
		i++
		sp.cur.WriteRune(rs[i])
		sp.inArg = true
	case r == ' ' || r == '\t' || r == '\n' || r == '\r':
		sp.end()
	default:
		sp.cur.WriteRune(r)
		sp.inArg = true
	}
	return i, nil
}

// HookEnv is the hook's environment: the rotator's own (parent) without the variables named in
// secrets, and the event.
func HookEnv(parent, secrets []string, ev Event) []string {
	out := make([]string, 0, len(parent)+8)
	for _, kv := range parent {
		name, _, _ := strings.Cut(kv, "=")
		secret := strings.HasPrefix(name, "CLEAR_ROTATOR_") // the event's own, set below
		for _, s := range secrets {
			secret = secret || name == s
		}
		if !secret {
			out = append(out, kv)
		}
	}
	validTill := ""
	if ev.Token.ValidTill != nil {
		validTill = ev.Token.ValidTill.UTC().Format(time.RFC3339)
	}
	apiClient := ""
	if ev.Token.APIClient > 0 {
		apiClient = fmt.Sprint(ev.Token.APIClient)
	}
	return append(out,
		EnvClient+"="+ev.Client, EnvSecretID+"="+ev.SecretID, EnvVersionID+"="+ev.VersionID,
		EnvValidTill+"="+validTill, EnvAPIClient+"="+apiClient,
		EnvIssuedAt+"="+ev.Token.IssuedAt.UTC().Format(time.RFC3339), EnvReason+"="+string(ev.Reason), EnvEventID+"="+ev.ID)
}

// Hook runs a command after every stored token.
type Hook struct {
	// Args is the command, split by SplitCommand.
	Args []string
	// Stdin is true when the command reads the token document on its standard input
	// (ROTATOR_HOOK_STDIN=token); otherwise its input is empty.
	Stdin bool
	// Timeout bounds one run; zero means DefaultHookTimeout.
	Timeout time.Duration
	// Env is the rotator's environment (os.Environ()); the hook gets it without the variables in
	// Secrets, the configuration's secrets (config.SecretEnv).
	Env     []string
	Secrets []string
	// Hide are secret values the rotator was given (client secrets, the signing secret, the
	// gateway key): the command's output is logged without them, as without the tokens.
	Hide []string
	// Log receives the command's output, with the token redacted.
	Log *slog.Logger
}

func (h *Hook) kind() string { return KindHook }

// attempt runs the command once. A non-zero exit, a timeout or a command that cannot be started
// right now is retried; a command that does not exist is not.
func (h *Hook) attempt(ctx context.Context, ev Event) (Verdict, error) {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Args[0], h.Args[1:]...)
	// Its own process group, so that a timeout ends what it started too (sh -c 'a | b').
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	cmd.Env = HookEnv(h.Env, h.Secrets, ev)
	if h.Stdin {
		doc, err := document.MarshalToken(ev.Token)
		if err != nil {
			return GiveUp, &permanentError{errors.New("the token document cannot be rendered")}
		}
		cmd.Stdin = bytes.NewReader(append(doc, '\n'))
	}
	var out capped
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// The command exited 0, but something it left running in the background still held its
		// output a second later (`reload-erp &`): the command succeeded (within its time limit,
		// or it would have been killed), and that child's output is not ours to wait for.
		err = nil
	}
	if err != nil && cmd.Process != nil {
		// A run that failed ends what it started too, as a timeout does (cmd.Cancel): a child it
		// left in the background would outlive it, and every retry would leave another.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	h.logOutput(ev, out.String(), err)
	switch {
	case err == nil:
		return Delivered, nil
	case ctx.Err() == context.DeadlineExceeded:
		return Retry, fmt.Errorf("the hook command did not finish within %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return Retry, fmt.Errorf("the hook command failed: %s", ee.ProcessState)
	}
	if cannotRun(err) {
		return GiveUp, &permanentError{cannotRunError(err)}
	}
	return Retry, fmt.Errorf("the hook command could not be started: %s", clear.Sanitize(err.Error()))
}

// cannotRun reports whether err says the command's program cannot be run at all (missing, or not
// executable): an attempt gives up on it, since no retry would find it.
func cannotRun(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EACCES)
}

func cannotRunError(err error) error {
	return fmt.Errorf("the hook command cannot be run: %s", clear.Sanitize(err.Error()))
}

// Check looks the command's program up as an attempt starts it (exec.LookPath on Args[0], in the
// rotator's PATH and working directory), without running it, and returns the path it resolves
// to, sanitised. It fails when the program cannot be found or is not executable, what an attempt
// gives up on (and when a bare name resolves to the working directory, which an attempt refuses
// too). `rotator check` reports it; the arguments, which may carry anything, are never shown.
func (h *Hook) Check() (string, error) {
	if len(h.Args) == 0 {
		return "", errors.New("the hook command is empty")
	}
	path, err := exec.LookPath(h.Args[0])
	if err != nil {
		return "", cannotRunError(err)
	}
	return clear.Sanitize(path), nil
}

// logOutput logs the command's output, each line sanitised and the token (and the one it
// replaced) redacted, since a script that was given the token may well print it, and what it
// replaced.
func (h *Hook) logOutput(ev Event, out string, err error) {
	if h.Log == nil || strings.TrimSpace(out) == "" {
		return
	}
	out = secret.Redact(out, append([]string{ev.Token.AccessToken.Reveal(), ev.Previous.Reveal()}, h.Hide...)...)
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		h.Log.Log(context.Background(), level, "hook output", "client", ev.Client, "line", clear.Sanitize(line))
	}
}

// Redact replaces every occurrence of the tokens in s (secret.Redact, the one redactor).
func Redact(s string, ts ...clear.AccessToken) string {
	plain := make([]string, len(ts))
	for i, t := range ts {
		plain[i] = t.Reveal()
	}
	return secret.Redact(s, plain...)
}

// capped keeps the first lines of output, up to maxOutput bytes, and drops the rest.
type capped struct {
	b       bytes.Buffer
	dropped bool
}

func (c *capped) Write(p []byte) (int, error) {
	if c.dropped {
		return len(p), nil
	}
	if c.b.Len()+len(p) > maxOutput {
		// Keep whole lines only: the last one may end in part of a token that the next write
		// completes, and a part would escape Redact.
		c.dropped = true
		kept := c.b.Bytes()
		c.b.Truncate(bytes.LastIndexByte(kept, '\n') + 1)
		return len(p), nil
	}
	return c.b.Write(p)
}

func (c *capped) String() string {
	s := c.b.String()
	if c.dropped {
		s += "\n[further output dropped]"
	}
	return s
}
