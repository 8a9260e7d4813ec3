package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/agentapitest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// eventsIssuerScript issues like a CA the test can take offline: while
// the file $1 exists it fails as a CA that does not answer; otherwise it
// signs with openssl and the CA in $2.
const eventsIssuerScript = `set -eu
if [ -e "$1" ]; then echo "the CA is offline" >&2; exit 1; fi
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$SENSU_TLSD_KEY_FILE" \
	-subj "/CN=$SENSU_TLSD_COMMON_NAME" -out "$d/csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n' >"$d/ext"
openssl x509 -req -in "$d/csr" -CA "$2/ca.pem" -CAkey "$2/ca-key.pem" -set_serial "0x$(openssl rand -hex 8)" \
	-days 1 -extfile "$d/ext" -out "$SENSU_TLSD_CERT_FILE" 2>/dev/null
cp "$2/ca.pem" "$SENSU_TLSD_CA_FILE"
`

// eventsDaemon starts the daemon with its CA offline, events going to
// agentURL, and returns it with the file that keeps the CA offline.
func eventsDaemon(t *testing.T, agentURL, timeout string) (*daemonProc, string) {
	t.Helper()
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl signs for the exec issuer")
	dir := t.TempDir()
	caDir := filepath.Join(dir, "exec-ca")
	mustRun(t, dir, nil, "ca", "init", "--dir", caDir)
	script, offline := filepath.Join(dir, "issue.sh"), filepath.Join(dir, "ca-offline")
	os.WriteFile(script, []byte(eventsIssuerScript), 0o755)
	os.WriteFile(offline, nil, 0o644)
	cfg := daemonConfig(t, dir, "24h", "33%", fmt.Sprintf(`    issuer:
      type: exec
      exec:
        command: [/bin/sh, %s, %s, %s]
events:
  enabled: true
  agent-api-url: %s
  handlers: [ops]
  timeout: %s
`, script, offline, caDir, agentURL, timeout))
	return daemonStart(t, dir, cfg), offline
}

// TestDaemonEventsFailingThenRecovering: the daemon posts a WARNING for
// the failing renewal and the OK once it recovers to a stand-in agent
// events API, with the fields Sensu requires.
func TestDaemonEventsFailingThenRecovering(t *testing.T) {
	agent := agentapitest.Start(t)
	d, offline := eventsDaemon(t, agent.URL, "2s")
	d.waitLog(`msg="renewal failed" .*the CA is offline`, 30*time.Second)
	ev := agent.Wait(t, 1, 10*time.Second)[0]
	c := ev.Check
	if c.Metadata.Name != "sensu-tlsd-renewal-backend-1" || *c.Status != 1 || !strings.HasPrefix(c.Output, "WARNING: backend-1: renewal failing (") ||
		!strings.Contains(c.Output, "the CA is offline") || len(c.Handlers) != 1 || c.Handlers[0] != "ops" {
		t.Fatalf("failing event: %+v", c)
	}
	if ev.Metrics == nil || len(ev.Metrics.Points) == 0 || ev.Metrics.Points[0].Name != "sensu_tlsd_renewal_failures" || ev.Metrics.Points[0].Value < 1 {
		t.Fatalf("failing event metrics: %+v", ev.Metrics)
	}

	os.Remove(offline)
	d.waitLog(`msg="certificate changed" name=backend-1 reason=initial`, 30*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := agent.Wait(t, 1, time.Second)
		last := evs[len(evs)-1].Check
		if *last.Status == 0 {
			if last.Metadata.Name != "sensu-tlsd-renewal-backend-1" || !strings.HasPrefix(last.Output, "OK: backend-1: serial ") {
				t.Fatalf("recovery event: %+v", last)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no OK event within 10s of the recovery; last: %+v", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDaemonEventsDeadAgentDoesNotSlowRenewal: with an agent that accepts
// connections and never answers, and a post timeout far longer than the
// retry backoff, the renewal still succeeds within the backoff of the CA
// coming back, and the failed posts are counted.
func TestDaemonEventsDeadAgentDoesNotSlowRenewal(t *testing.T) {
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	d, offline := eventsDaemon(t, "http://"+hang.Addr().String()+"/events", "20s")
	d.waitLog(`msg="renewal failed" .*the CA is offline`, 30*time.Second)
	d.waitLog(`msg="renewal failed" .*the CA is offline`, 10*time.Second) // a post hangs meanwhile
	os.Remove(offline)
	back := time.Now()
	d.waitLog(`msg="certificate changed" name=backend-1 reason=initial`, 30*time.Second)
	took := time.Since(back)
	t.Logf("renewed %s after the CA came back, with a post to the dead agent pending (timeout 20s)", took.Round(time.Millisecond))
	// Held up by the post, the renewal would wait out its 20 s timeout;
	// free, it follows the 2 s retry backoff. 12 s tells them apart on
	// a loaded machine too.
	if took > 12*time.Second {
		t.Fatalf("the renewal took %s after the CA came back with retry-max 2s: posting to the dead agent held it up", took)
	}
	d.waitLog(`msg="posting a Sensu event to the agent failed; it is retried with the latest status"`, 30*time.Second)
	resp, err := http.Get("http://" + d.metricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	if !strings.Contains(body, `sensu_tlsd_event_post_failures_total{reason="connect"} `) {
		t.Fatalf("/metrics lacks the failed post:\n%s", grepLines(body, "sensu_tlsd_event"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestMigrateRefusalPostsCutoverEvent: a refused cutover step reaches
// Sensu as a CRITICAL sensu-tlsd-cutover event with the refusal's words.
func TestMigrateRefusalPostsCutoverEvent(t *testing.T) {
	agent := agentapitest.Start(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tlsd.yml"), []byte(fmt.Sprintf("state-dir: %s/state\nevents: {enabled: true, agent-api-url: %q}\n", dir, agent.URL)), 0o644)
	os.WriteFile(filepath.Join(dir, "backend.yml"), []byte("api-listen-address: 127.0.0.1:8080\n"), 0o644)
	r := run(t, dir, nil, "--config", "tlsd.yml", "migrate", "apply", "--phase", "3", "--backend-config", "backend.yml")
	if r.code != 1 || !strings.Contains(r.stderr, "apply phase 1 (bridge) first") {
		t.Fatalf("migrate apply --phase 3 at phase 0: %+v", r)
	}
	c := agent.Wait(t, 1, 5*time.Second)[0].Check
	if c.Metadata.Name != "sensu-tlsd-cutover" || *c.Status != 2 ||
		c.Output != "CRITICAL: cutover phase 3 (native) refused: the node is at phase 0 (plaintext): apply phase 1 (bridge) first" {
		t.Fatalf("cutover event: %+v", c)
	}
}
