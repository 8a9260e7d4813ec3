package agentapitest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"
)

// Event is the documented core/v2 Event as the agent events API decodes
// it: a field sensu-tlsd sends that is not here is one Sensu would drop.
type Event struct {
	Timestamp int64    `json:"timestamp"`
	Check     *Check   `json:"check"`
	Metrics   *Metrics `json:"metrics"`
}

// Check is core/v2 Check, the fields a client may set.
type Check struct {
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Status   *uint32  `json:"status"`
	Output   string   `json:"output"`
	Executed int64    `json:"executed"`
	Interval uint32   `json:"interval"`
	Handlers []string `json:"handlers"`
}

// Metrics is core/v2 Metrics.
type Metrics struct {
	Handlers []string `json:"handlers"`
	Points   []struct {
		Name      string  `json:"name"`
		Value     float64 `json:"value"`
		Timestamp int64   `json:"timestamp"`
		Tags      []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"tags"`
	} `json:"points"`
}

// sensuName is core/v2's rule for resource names.
var sensuName = regexp.MustCompile(`\A[\w.\-]+\z`)

// Agent is the stand-in: it answers 202 to an event Sensu accepts and 400
// otherwise, as the agent does.
type Agent struct {
	// URL is the events endpoint, http://127.0.0.1:PORT/events.
	URL string

	mu     sync.Mutex
	events []Event
}

// Start serves a stand-in agent on a loopback port until the test ends.
func Start(t testing.TB) *Agent {
	a := &Agent{}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	a.URL = srv.URL + "/events"
	return a
}

func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/events" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want POST /events with application/json", http.StatusBadRequest)
		return
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	var e Event
	if err := dec.Decode(&e); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch {
	case e.Check == nil:
		http.Error(w, "check has not been instantiated for this event", http.StatusBadRequest)
		return
	case !sensuName.MatchString(e.Check.Metadata.Name):
		http.Error(w, "name must match "+sensuName.String(), http.StatusBadRequest)
		return
	case e.Check.Status == nil || *e.Check.Status > 2 || e.Check.Output == "" || e.Timestamp == 0:
		http.Error(w, "status (0, 1 or 2), output and timestamp are required", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.events = append(a.events, e)
	a.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// Wait returns the events received once there are at least n, failing
// the test after within.
func (a *Agent) Wait(t testing.TB, n int, within time.Duration) []Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a.mu.Lock()
		got := append([]Event(nil), a.events...)
		a.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stand-in agent got %d events within %s, want %d", len(got), within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
