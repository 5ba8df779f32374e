package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ID is a parsed Secrets Manager secret id: a name or an ARN.
type ID struct {
	Raw string // as given
	arn bool
	// partition, region and account are set for ARNs only; a plain name is resolved in whatever
	// region and account the rotator runs with.
	partition, region, account string
	// names are the secret names the id may stand for. A full ARN ends in NAME-AbCdEf, but a
	// partial ARN (which Secrets Manager also accepts) may end in a name that merely looks like
	// that, so both readings count.
	names []string
}

// Names are the secret names the id may stand for: one, or two for an ARN whose name ends in
// what may be AWS's random suffix.
func (id ID) Names() []string { return id.names }

// ParseID checks that s is a secret name or a Secrets Manager secret ARN (names: at most 512
// characters of A-Z a-z 0-9 /_+=.@- ; ARNs: at most 2048). The error never quotes s, which may be
// a client secret pasted into the wrong field: the caller decides whether showing it is safe.
func ParseID(s string) (ID, error) {
	id := ID{Raw: s, names: []string{s}}
	if !strings.HasPrefix(s, "arn:") {
		return id, checkName(s)
	}
	if len(s) > 2048 {
		return id, fmt.Errorf("is %d characters long; an ARN has at most 2048", len(s))
	}
	// arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME; a name has no ':'.
	const want = "arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME"
	parts := strings.Split(s, ":")
	if len(parts) != 7 || parts[2] != "secretsmanager" || parts[5] != "secret" {
		return id, errors.New("is not a Secrets Manager secret ARN; want " + want + " or a plain secret name")
	}
	id.arn, id.partition, id.region, id.account = true, parts[1], parts[3], parts[4]
	lower := func(s string) bool { return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == "" }
	if !lower(id.partition) || !lower(id.region) {
		return id, errors.New("has a malformed partition or region; want " + want)
	}
	if len(id.account) != 12 || strings.Trim(id.account, "0123456789") != "" {
		return id, errors.New("has a malformed account id (12 digits); want " + want)
	}
	name := parts[6]
	if err := checkName(name); err != nil {
		return id, fmt.Errorf("has a secret name that %s", strings.TrimPrefix(err.Error(), "is "))
	}
	id.names = []string{name}
	// AWS appends "-" and six random letters or digits to a name in its ARN.
	if n := len(name) - 7; n >= 1 && name[n] == '-' && strings.Trim(name[n+1:], alnum) == "" {
		id.names = append(id.names, name[:n])
	}
	return id, nil
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// checkName applies Secrets Manager's naming rules.
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case len(s) > 512:
		return fmt.Errorf("is %d characters long; a secret name has at most 512", len(s))
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune(alnum+"/_+=.@-", r) }); i >= 0 {
		return fmt.Errorf("has a character at position %d that is not allowed in a secret name (allowed: A-Z a-z 0-9 / _ + = . @ -)", i+1)
	}
	return nil
}

// SameSecret reports whether a and b may name the same secret. It errs on the side of "yes": ids
// that might collide would, if they do, make the rotator overwrite or revoke its own credentials.
// ARNs in different partitions, regions or accounts are different secrets; a plain name could
// live anywhere, so it is compared by name alone.
func SameSecret(a, b ID) bool {
	if a.arn && b.arn && (a.partition != b.partition || a.region != b.region || a.account != b.account) {
		return false
	}
	return slices.ContainsFunc(a.names, func(x string) bool { return slices.Contains(b.names, x) })
}
