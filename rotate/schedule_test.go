package rotate

import (
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// TestJitterIsSharedBySameServices: certificates that list the same
// services come due at the same moment (so their service restarts once);
// other service sets, certificates without services, and other processes
// (nodes) get their own place in the jitter window.
func TestJitterIsSharedBySameServices(t *testing.T) {
	const seed, otherNode = 1, 2
	backend := jitterShare(seed, "backend-api", []string{"sensu-backend", "nginx"})
	if got := jitterShare(seed, "backend-etcd", []string{"nginx", "sensu-backend", "nginx"}); got != backend {
		t.Errorf("same services in another order: share %v, want %v", got, backend)
	}
	for what, other := range map[string]float64{
		"other services":      jitterShare(seed, "agent-1", []string{"sensu-agent"}),
		"no services":         jitterShare(seed, "backend-api", nil),
		"another node":        jitterShare(otherNode, "backend-api", []string{"sensu-backend", "nginx"}),
		"a certificate alone": jitterShare(seed, "x", nil),
	} {
		if other == backend {
			t.Errorf("%s: share %v equals the backend's", what, other)
		}
		if other < 0 || other >= 1 {
			t.Errorf("%s: share %v outside [0, 1)", what, other)
		}
	}
	if jitterShare(seed, "x", nil) == jitterShare(seed, "y", nil) {
		t.Error("two certificates without services share a place in the window")
	}

	// Through Plans: two certificates issued together for one service
	// renew at the same instant; with the 10m default jitter that is what
	// lets the service actions' coalesce window (service-actions.coalesce,
	// 10s by default) restart the service once.
	cfg := testConfig(t, 90*24*time.Hour, "")
	cfg.Renewal.Jitter = 0 // the default
	second := cfg.Certificates[0]
	second.Name, second.CertFile, second.KeyFile = "backend-etcd", second.CertFile+".etcd", second.KeyFile+".etcd"
	cfg.Certificates = append(cfg.Certificates, second)
	cfg.Certificates[0].Services = []string{"sensu-backend"}
	cfg.Certificates[1].Services = []string{"sensu-backend"}
	plans := mustPlans(t, cfg)
	leaf := mustLeaf(time.Now(), 90*24*time.Hour)
	if a, b := plans[0].RenewAt(leaf), plans[1].RenewAt(leaf); !a.Equal(b) {
		t.Fatalf("certificates of one service renew %s apart", a.Sub(b))
	}
	defaults := &config.Config{}
	defaults.ApplyDefaults()
	if plans[0].Jitter != defaults.Renewal.Jitter || plans[0].JitterShare == 0 {
		t.Fatalf("plan jitter %s share %v: the default jitter does not apply", plans[0].Jitter, plans[0].JitterShare)
	}
}

// TestRenewBeforeRatioIsOfTheRequestedLifetime: the local CA backdates
// NotBefore 5 minutes for clock skew, so a 5-minute certificate is valid
// for 10. Renew-before 33% is a third of the 5 minutes asked for, not of
// the 10 (which renewed it after 1m42s).
func TestRenewBeforeRatioIsOfTheRequestedLifetime(t *testing.T) {
	authority, err := ca.Init(t.TempDir(), testCAOptions)
	if err != nil {
		t.Fatal(err)
	}
	const lifetime = 5 * time.Minute
	is, err := authority.Issue(ca.Request{Name: "backend-1", Profile: pki.Backend, Hosts: []string{"localhost"}, Lifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	leaf := is.Cert
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got <= lifetime {
		t.Fatalf("test setup: the leaf is valid for %s, want it backdated beyond %s", got, lifetime)
	}
	ratio, _, err := config.ParseRenewBefore("33%")
	if err != nil {
		t.Fatal(err)
	}
	p := Plan{Lifetime: lifetime, Before: Before{Ratio: ratio}}
	want := leaf.NotAfter.Add(-time.Duration(0.33 * float64(lifetime)))
	if at := p.RenewAt(leaf); !at.Equal(want) {
		t.Fatalf("renew at %s (%s before expiry), want %s (33%% of the %s asked for)", at, leaf.NotAfter.Sub(at), want, lifetime)
	}
	// A leaf cut short (at its CA's expiry) is taken as it is.
	short := mustLeaf(time.Now(), time.Minute)
	if at, want := p.RenewAt(short), short.NotAfter.Add(-time.Duration(0.33*float64(time.Minute))); !at.Equal(want) {
		t.Fatalf("a leaf shorter than asked renews at %s, want %s", at, want)
	}
}
