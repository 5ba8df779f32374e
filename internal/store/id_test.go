package store_test

import (
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/store"
)

func TestSameSecret(t *testing.T) {
	const arn = "arn:aws:secretsmanager:ap-south-1:123456789012:secret:"
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"tok", "tok", true},
		{"tok", "Tok", false},
		{"tok", "tok2", false},
		{arn + "tok-AbCdEf", "tok", true},
		{"tok", arn + "tok-AbCdEf", true},
		{arn + "tok-AbCdEf", arn + "tok-AbCdEf", true},
		{arn + "tok-AbCdEf", arn + "tok", true}, // full and partial ARN
		{arn + "tok-AbCdEf", "tok-AbCdEf", true},
		{arn + "path/to/tok-123456", "path/to/tok", true},
		{arn + "tok-AbCdE", "tok", false}, // only five characters: not AWS's suffix
		{arn + "tok-AbCdEf", "tok-Ab", false},
		{arn + "tok-AbCdEf", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tok-AbCdEf", false},
		{arn + "tok-AbCdEf", "arn:aws:secretsmanager:ap-south-1:210987654321:secret:tok-AbCdEf", false},
		{arn + "tok-AbCdEf", "arn:aws-cn:secretsmanager:ap-south-1:123456789012:secret:tok-AbCdEf", false},
		{"-AbCdEf", arn + "-AbCdEf", true},
	} {
		a, err := store.ParseID(tc.a)
		if err != nil {
			t.Fatalf("%s: %v", tc.a, err)
		}
		b, err := store.ParseID(tc.b)
		if err != nil {
			t.Fatalf("%s: %v", tc.b, err)
		}
		if got := store.SameSecret(a, b); got != tc.same {
			t.Errorf("SameSecret(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

func TestParseIDErrors(t *testing.T) {
	for _, s := range []string{
		"",
		"has space",
		"colon:name",
		strings.Repeat("n", 513),
		"arn:aws:secretsmanager:ap-south-1:123456789012:secret",
		"arn:aws:secretsmanager:ap-south-1:123456789012:secret:",
		"arn:aws:secretsmanager:ap-south-1:123456789012:secret:a:b",
		"arn:aws:ssm:ap-south-1:123456789012:parameter:x",
		"arn:aws:secretsmanager:ap-south-1:12345678901x:secret:x",
		"arn::secretsmanager:ap-south-1:123456789012:secret:x",
		"arn:aws:secretsmanager:AP-SOUTH-1:123456789012:secret:x",
	} {
		if _, err := store.ParseID(s); err == nil {
			t.Errorf("ParseID(%q) accepted", s)
		}
	}
	for _, s := range []string{"a", "prod/clear/token", "a_b+c=d.e@f-g", strings.Repeat("n", 512),
		"arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x"} {
		if _, err := store.ParseID(s); err != nil {
			t.Errorf("ParseID(%q): %v", s, err)
		}
	}
}
