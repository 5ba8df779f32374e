package gateway

import "time"

// AccessJSONLine is appendAccessJSON for the external tests.
func AccessJSONLine(at time.Time, method, path string, status int, took time.Duration, client string, replayed bool) ([]byte, bool) {
	return appendAccessJSON(nil, &accessEntry{at: at, method: method, path: path, status: status, took: took, client: client, replayed: replayed})
}
