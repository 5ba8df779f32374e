package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// secretRef is a parsed Secrets Manager secret id: a name or an ARN.
type secretRef struct {
	raw     string
	arn     bool
	literal bool // a literal client secret, compared with literals only (crossCheck)
	// partition, region and account are set for ARNs only; a plain name is
	// resolved in whatever region and account the rotator runs with.
	partition, region, account string
	// names are the secret names the id may stand for. A full ARN ends in
	// NAME-AbCdEf, but a partial ARN (which Secrets Manager also accepts) may
	// end in a name that merely looks like that, so both readings count.
	names []string
}

// parseSecretID checks that s is a secret name or a Secrets Manager secret
// ARN (names: at most 512 characters of A-Z a-z 0-9 /_+=.@- ; ARNs: at most
// 2048). The error never quotes s: the caller decides whether that is safe.
func parseSecretID(s string) (secretRef, error) {
	ref := secretRef{raw: s, names: []string{s}}
	if !strings.HasPrefix(s, "arn:") {
		return ref, checkSecretName(s)
	}
	if len(s) > 2048 {
		return ref, fmt.Errorf("is %d characters long; an ARN has at most 2048", len(s))
	}
	// arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME; a name has no ':'.
	const want = "arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME"
	parts := strings.Split(s, ":")
	if len(parts) != 7 || parts[2] != "secretsmanager" || parts[5] != "secret" {
		return ref, errors.New("is not a Secrets Manager secret ARN; want " + want + " or a plain secret name")
	}
	ref.arn, ref.partition, ref.region, ref.account = true, parts[1], parts[3], parts[4]
	lower := func(s string) bool { return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == "" }
	if !lower(ref.partition) || !lower(ref.region) {
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
	// AWS appends "-" and six random letters or digits to a name in its ARN.
	if n := len(name) - 7; n >= 1 && name[n] == '-' && strings.Trim(name[n+1:], alnum) == "" {
		ref.names = append(ref.names, name[:n])
	}
	return ref, nil
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// checkSecretName applies Secrets Manager's naming rules.
func checkSecretName(s string) error {
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

// sameSecret reports whether a and b may name the same secret. It errs on the
// side of "yes": ids that might collide would, if they do, make the rotator
// overwrite or revoke its own credentials. ARNs in different partitions,
// regions or accounts are different secrets; a plain name could live
// anywhere, so it is compared by name alone.
func sameSecret(a, b secretRef) bool {
	if a.literal != b.literal || a.arn && b.arn && (a.partition != b.partition || a.region != b.region || a.account != b.account) {
		return false
	}
	return slices.ContainsFunc(a.names, func(x string) bool { return slices.Contains(b.names, x) })
}
