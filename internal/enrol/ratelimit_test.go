package enrol

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"testing"
	"time"
)

func TestLimiterRefillsPerAddress(t *testing.T) {
	now := time.Unix(0, 0)
	l := NewLimiter(1, 3, func() time.Time { return now })
	for i := range 3 {
		if ok, _ := l.Allow("10.0.0.1:4000"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	if ok, wait := l.Allow("10.0.0.1:4001"); ok || wait != time.Second {
		t.Fatalf("past the burst, from another port of the same address: allowed %v, retry after %v; want refused, 1s", ok, wait)
	}
	if ok, _ := l.Allow("10.0.0.2:4000"); !ok {
		t.Fatal("another address was refused")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, wait := l.Allow("10.0.0.1:4000"); ok || wait != 500*time.Millisecond {
		t.Fatalf("half a token later: allowed %v, retry after %v; want refused, 500ms", ok, wait)
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("10.0.0.1:4000"); !ok {
		t.Fatal("a token later, still refused")
	}
}

// The limit answers before the request is read or the Sensu API asked,
// with a Retry-After; renewals (no password check) are not limited.
func TestServerLimitsEnrolmentsPerAddress(t *testing.T) {
	s := newTestServer(t)
	now := time.Unix(0, 0)
	s.srv.Limit = NewLimiter(1, 2, func() time.Time { return now })
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.pool}}}
	post := func() *http.Response {
		req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/enrol", bytes.NewReader(requestBody(t, "web-1", "default")))
		req.SetBasicAuth("agent", "wrong")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for range 2 {
		if resp := post(); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("within the burst: %s, want the Sensu API's refusal (401)", resp.Status)
		}
	}
	resp := post()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("past the burst: %s, Retry-After %q; want 429, 1", resp.Status, resp.Header.Get("Retry-After"))
	}
	if code, _ := s.post(t, "/v1/renew", nil, requestBody(t, "web-1", "default")); code != http.StatusUnauthorized {
		t.Fatalf("a renewal past the enrolment limit: %d, want its own 401 (no certificate)", code)
	}
}
