package config

import (
	"errors"
	"fmt"
	"strings"
)

// Secrets Manager limits: a name is at most 512 characters of ASCII letters,
// digits and /_+=.@- ; an ARN is at most 2048 characters.
const (
	maxSecretNameLen = 512
	maxSecretARNLen  = 2048
	// arnSuffixLen is the length of the random suffix AWS appends, after a
	// hyphen, to a secret's name in its full ARN.
	arnSuffixLen = 6
)

// secretRef is a parsed Secrets Manager secret id: a name or an ARN.
type secretRef struct {
	raw string
	arn bool
	// partition, region and account are set for ARNs only; a plain name is
	// resolved in whatever region and account the rotator runs with.
	partition, region, account string
	// names are the secret names the id may stand for. A full ARN ends in
	// NAME-AbCdEf, but a partial ARN (which Secrets Manager also accepts)
	// may end in a name that merely looks like that, so both readings count.
	names []string
}

// parseSecretID checks that s is a secret name or a Secrets Manager secret
// ARN. The error never quotes s, so the caller decides whether echoing it is
// safe: for a client_secret_id it is not, since an operator who confused the
// two fields would have pasted the secret itself.
func parseSecretID(s string) (secretRef, error) {
	ref := secretRef{raw: s}
	if s == "" {
		return ref, errors.New("is empty")
	}
	if !strings.HasPrefix(s, "arn:") {
		if err := checkSecretName(s); err != nil {
			return ref, err
		}
		ref.names = []string{s}
		return ref, nil
	}
	if len(s) > maxSecretARNLen {
		return ref, fmt.Errorf("is %d characters long; an ARN has at most %d", len(s), maxSecretARNLen)
	}
	// arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME; names cannot
	// contain ':', so a well-formed ARN has exactly seven parts.
	parts := strings.Split(s, ":")
	const want = "arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME"
	if len(parts) != 7 || parts[2] != "secretsmanager" || parts[5] != "secret" {
		return ref, errors.New("is not a Secrets Manager secret ARN; want " + want + " or a plain secret name")
	}
	ref.arn = true
	ref.partition, ref.region, ref.account = parts[1], parts[3], parts[4]
	if !isLowerWord(ref.partition) || !isLowerWord(ref.region) {
		return ref, errors.New("has a malformed partition or region; want " + want)
	}
	if len(ref.account) != 12 || strings.Trim(ref.account, "0123456789") != "" {
		return ref, errors.New("has a malformed account id (12 digits); want " + want)
	}
	name := parts[6]
	if err := checkSecretName(name); err != nil {
		return ref, fmt.Errorf("has a secret name that %s", strings.TrimPrefix(err.Error(), "is "))
	}
	ref.names = []string{name}
	if base, ok := stripARNSuffix(name); ok {
		ref.names = append(ref.names, base)
	}
	return ref, nil
}

// checkSecretName applies Secrets Manager's naming rules.
func checkSecretName(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > maxSecretNameLen {
		return fmt.Errorf("is %d characters long; a secret name has at most %d", len(s), maxSecretNameLen)
	}
	for i := 0; i < len(s); i++ {
		if !isSecretNameChar(s[i]) {
			return fmt.Errorf("has a character at position %d that is not allowed in a secret name (allowed: A-Z a-z 0-9 / _ + = . @ -)", i+1)
		}
	}
	return nil
}

func isSecretNameChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("/_+=.@-", c) >= 0
}

func isLowerWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// stripARNSuffix removes AWS's "-AbCdEf" suffix from a name taken from an ARN.
func stripARNSuffix(name string) (string, bool) {
	n := len(name) - arnSuffixLen - 1
	if n < 1 || name[n] != '-' {
		return "", false
	}
	for i := n + 1; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return "", false
		}
	}
	return name[:n], true
}

// sameSecret reports whether a and b may name the same secret. It errs on the
// side of "yes": two ids that might collide would, if they do, make the
// rotator overwrite or revoke its own credentials, which is far worse than
// asking the operator to spell one of them differently. Two ARNs in different
// partitions, regions or accounts are always different secrets; a plain name
// could live anywhere, so it is compared by name alone.
func sameSecret(a, b secretRef) bool {
	if a.arn && b.arn && (a.partition != b.partition || a.region != b.region || a.account != b.account) {
		return false
	}
	for _, x := range a.names {
		for _, y := range b.names {
			if x == y {
				return true
			}
		}
	}
	return false
}
