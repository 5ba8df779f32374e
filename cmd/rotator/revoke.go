package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// confirm asks the operator to type "yes" before a revoke, which cuts off every ERP system that
// still holds a token. Without a terminal there is nobody to ask, so it refuses rather than read
// an answer from a pipe or a file that nobody typed; an operator who means it passes --yes. An
// answer other than yes, or none at all, does nothing.
func confirm(in io.Reader, terminal bool, prompt io.Writer, clients []string) error {
	if !terminal {
		return usagef("revoke", "revoke needs --yes when stdin is not a terminal: it revokes the tokens ERP systems hold, so it asks first, and here nobody can answer")
	}
	fmt.Fprintf(prompt, "This asks Clear for new tokens for %s, which revokes every token issued so far;\n"+
		"ERP systems holding one lose access until they re-read the secret.\nType yes to continue: ", strings.Join(clients, ", "))
	// A line's worth at most: stdin may be an endless device (/dev/zero passes for a terminal).
	line, err := bufio.NewReader(io.LimitReader(in, maxAnswer)).ReadString('\n')
	answer := strings.TrimSpace(line)
	switch {
	case answer == "yes":
		return nil
	case answer == "" && err != nil:
		fmt.Fprintln(prompt)
		return usagef("revoke", "no answer (end of input); nothing was revoked. Pass --yes to revoke without asking")
	}
	return fmt.Errorf("not confirmed (answer %q, not \"yes\"); nothing was revoked", truncate(answer, 20))
}

// maxAnswer bounds what is read of the answer to confirm's question.
const maxAnswer = 256

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// isTerminal reports whether r is an interactive terminal: a character device other than
// /dev/null, which is what a process started without stdin (cron, exec.Cmd) gets and which would
// otherwise pass for a terminal. It uses os.File.Stat alone, so that no terminal library is needed.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}
