package cluster

import (
	"strings"
	"testing"
)

func TestCanLoseKeepsAMajorityWithoutTheMember(t *testing.T) {
	member := func(name string, healthy bool) Member {
		m := Member{Name: name, Healthy: healthy}
		if !healthy {
			m.Problem = "connection refused"
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		view    View
		refusal string
	}{
		{"three healthy", View{Quorum: true, Members: []Member{member("a", true), member("b", true), member("c", true)}}, ""},
		{"one member", View{Quorum: true, Members: []Member{member("a", true)}}, ""},
		{"another member down", View{Quorum: true, Members: []Member{member("a", true), member("b", true), member("c", false)}}, "bring back c (connection refused) first"},
		{"the member itself down", View{Quorum: true, Members: []Member{member("a", false), member("b", true), member("c", true)}}, ""},
		{"two members", View{Quorum: true, Members: []Member{member("a", true), member("b", true)}}, "a cluster of 2 members cannot lose one"},
		{"no quorum", View{Members: []Member{member("a", true), member("b", false), member("c", false)}}, "has no quorum (1 of 3 members answer)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := canLose(tc.view, "a")
			switch {
			case tc.refusal == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.refusal != "" && (err == nil || !strings.Contains(err.Error(), tc.refusal)):
				t.Errorf("got %v, want a refusal saying %q", err, tc.refusal)
			}
		})
	}
}
