package rotate

import (
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
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
	if plans[0].Jitter != config.Default().Renewal.Jitter || plans[0].JitterShare == 0 {
		t.Fatalf("plan jitter %s share %v: the default jitter does not apply", plans[0].Jitter, plans[0].JitterShare)
	}
}
