package etcdtest

import (
	"strings"
	"testing"
	"time"
)

// Three members start from their backend.yml files with the flags
// sensu-backend derives from its etcd-* keys, form one cluster, and a
// member restarted from its file rejoins it.
func TestMembersRunFromTheirBackendYMLAndRejoinAfterARestart(t *testing.T) {
	c := Start(t, 3)
	flags := strings.Join(c.Members[0].Flags(t), " ")
	for _, want := range []string{"--name=backend-1", "--initial-cluster=backend-1=http://127.0.0.1:", ",backend-3=http://127.0.0.1:",
		"--initial-cluster-state=new", "--election-timeout=2500", "--pre-vote=true", "--data-dir=" + c.Members[0].DataDir} {
		if !strings.Contains(flags, want) {
			t.Errorf("flags of backend-1 lack %q: %s", want, flags)
		}
	}
	for _, m := range c.Members {
		body, err := c.Health(m)
		if err != nil || !strings.Contains(body, `"health":"true"`) {
			t.Errorf("%s /health: %s %v", m.Name, body, err)
		}
	}
	c.RestartMember(c.Members[1])
	c.WaitHealthy(c.Members[1], 30*time.Second)
}
