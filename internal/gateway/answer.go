package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
)

// ErrorSource marks the gateway's own answers, so that an ERP (and a person reading its log) can
// tell them from Clear's, which carry "CLEAR".
const ErrorSource = "CLEAR-ROTATOR"

// The gateway's own error codes.
const (
	CodeKeyMissing    = "CLEAR-ROTATOR-KEY-MISSING"
	CodeKeyWrong      = "CLEAR-ROTATOR-KEY-WRONG"
	CodeClientNeeded  = "CLEAR-ROTATOR-CLIENT-REQUIRED"
	CodeClientUnknown = "CLEAR-ROTATOR-CLIENT-UNKNOWN"
	CodeBadTarget     = "CLEAR-ROTATOR-BAD-TARGET"
	// CodeMethodNotAllowed refuses TRACE and TRACK (405): Clear's echo of the request would
	// show the caller the token the gateway added.
	CodeMethodNotAllowed = "CLEAR-ROTATOR-METHOD-NOT-ALLOWED"
	// CodeTokenAPI refuses a call to Clear's token API (403): a token issued through the gateway
	// would revoke the one the gateway sends to every ERP.
	CodeTokenAPI    = "CLEAR-ROTATOR-TOKEN-API"
	CodeBadRequest  = "CLEAR-ROTATOR-BAD-REQUEST"
	CodeNoToken     = "CLEAR-ROTATOR-NO-TOKEN"
	CodeUnreachable = "CLEAR-ROTATOR-UPSTREAM-UNREACHABLE"
	CodeTimeout     = "CLEAR-ROTATOR-UPSTREAM-TIMEOUT"
)

// clearError is one entry of Clear's error shape.
type clearError struct {
	Code    string `json:"error_code"`
	Message string `json:"error_message"`
	Source  string `json:"error_source"`
	ID      string `json:"error_id"`
}

// answer writes one of the gateway's own answers in Clear's error shape. The message is fixed
// text chosen by the gateway: it never echoes anything the caller sent.
func answer(w http.ResponseWriter, status int, code, msg string, retryAfter int) {
	var id [8]byte
	_, _ = rand.Read(id[:])
	body, _ := json.Marshal(map[string][]clearError{"errors": {{Code: code, Message: msg, Source: ErrorSource, ID: hex.EncodeToString(id[:])}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(retryAfter))
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
