package apicall

import "testing"

func TestIs(t *testing.T) {
	for _, tc := range []struct {
		learnt, method, path string
		want                 bool
	}{
		{"/v1/no-product", "GET", "/v1/no-product", true},
		{"/v1/no-product", "POST", "/v1/no-product", false},
		{"/v1/no-product", "GET", "/v1/no-product/", false},
		{"/v1/no-product", "GET", "/v1/other", false},
		{"/v2/invoices/42/cancel", "GET", "/v2/invoices/43/cancel", true},       // digits: an id
		{"/v2/invoices/42/cancel", "GET", "/v2/invoices/43/print", false},       // another call on it
		{"/v2/invoices/42/cancel", "GET", "/v2/invoices/draft/cancel", false},   // not an id
		{"/v2/invoices/42/cancel", "GET", "/v3/invoices/42/cancel", false},      // a version is not an id
		{"/einv/29AAACB1234C1Z5/irn", "GET", "/einv/27AAACB9999C1Z1/irn", true}, // a GSTIN
		{"/einv/29AAACB1234C1Z5/irn", "GET", "/einv/29AAACB1234C1Z5", false},
		{"/gst/returns/GSTR3B", "GET", "/gst/returns/GSTR1", false}, // short names with digits are names
		{"/x/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "GET", "/x/1a2b3c4d-0000-1111-2222-333344445555", true},
		{"/x/12345678", "GET", "/x/abcdefgh", false}, // an id only where the other is one too
		{"", "GET", "", true},
		{"/a//1", "GET", "/a//2", true},
	} {
		m := tc.method
		if got := (Call{"GET", tc.learnt}).Is(m, tc.path); got != tc.want {
			t.Errorf("learnt GET %s, %s %s: %v, want %v", tc.learnt, m, tc.path, got, tc.want)
		}
		if got := (Call{m, tc.path}).Is("GET", tc.learnt); got != tc.want {
			t.Errorf("learnt %s %s, GET %s: %v, want %v (not symmetric)", m, tc.path, tc.learnt, got, tc.want)
		}
	}
	if !(Call{}).Is("", "") || (Call{}).Is("GET", "/") {
		t.Error("the zero Call is the same call as itself only")
	}
}

// TestTokenAccepted: the answers that say Clear accepted the token, the gateway's rule and
// cleartoken's. A 403 may be about the token, and a 5xx may come before Clear looks at it.
func TestTokenAccepted(t *testing.T) {
	for status, want := range map[int]bool{200: true, 201: true, 204: true, 302: true, 400: true, 404: true, 409: true, 422: true, 429: true,
		401: false, 403: false, 500: false, 502: false, 503: false, 504: false} {
		if got := TokenAccepted(status); got != want {
			t.Errorf("TokenAccepted(%d) = %v, want %v", status, got, want)
		}
	}
}
