package rotate

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/certstate"
	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/ca"
)

// recorder is a consumer that keeps every change and can refuse some.
type recorder struct {
	mu      sync.Mutex
	changes []event.Change
	ch      chan event.Change
	refuse  func(event.Change) error
}

func newRecorder() *recorder { return &recorder{ch: make(chan event.Change, 32)} }

func (r *recorder) CertificateChanged(_ context.Context, c event.Change) error {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	refuse := r.refuse
	r.mu.Unlock()
	r.ch <- c
	if refuse != nil {
		return refuse(c)
	}
	return nil
}

func (r *recorder) next(t *testing.T, within time.Duration) event.Change {
	t.Helper()
	select {
	case c := <-r.ch:
		return c
	case <-time.After(within):
		t.Fatalf("no change announced within %s", within)
		return event.Change{}
	}
}

func (r *recorder) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case c := <-r.ch:
		t.Fatalf("unexpected change announced: %+v", c)
	case <-time.After(d):
	}
}

// testCAOptions make a CA for a test, as ca init does from the defaults.
var testCAOptions = ca.InitOptions{CommonName: "test CA", Lifetime: 24 * time.Hour}

func testConfig(t *testing.T, lifetime time.Duration, before string) *config.Config {
	return testConfigAt(t.TempDir(), lifetime, before)
}

// testConfigAt is one backend certificate under root, renewed on time
// (jitter all but off: 0 would take the default).
func testConfigAt(root string, lifetime time.Duration, before string) *config.Config {
	return &config.Config{
		StateDir: filepath.Join(root, "state"),
		Renewal:  config.Renewal{Before: before, Jitter: time.Millisecond, RetryMin: time.Second, RetryMax: 2 * time.Second},
		CA:       config.CA{Create: true},
		Certificates: []config.Certificate{{
			Name: "backend-1", Profile: "backend", Hosts: []string{"localhost", "127.0.0.1"},
			CertFile: filepath.Join(root, "etc", "backend-1.pem"),
			KeyFile:  filepath.Join(root, "etc", "backend-1-key.pem"),
			CAFile:   filepath.Join(root, "etc", "ca.pem"),
			Lifetime: lifetime,
		}},
	}
}

// resolve does what config.Load does to a config built in code (defaults,
// validation) and plans it.
func resolve(cfg *config.Config) ([]Plan, error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return Plans(cfg)
}

func mustPlans(t testing.TB, cfg *config.Config) []Plan {
	t.Helper()
	plans, err := resolve(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return plans
}

func startManager(t testing.TB, cfg *config.Config, consumer event.Subscriber) (*Manager, []Plan) {
	t.Helper()
	return startManagerWith(t, cfg, consumer, newSkipClock())
}

// startManagerWith is startManager on clock clk.
func startManagerWith(t testing.TB, cfg *config.Config, consumer event.Subscriber, clk *skipClock) (*Manager, []Plan) {
	t.Helper()
	plans := mustPlans(t, cfg)
	m, stop := runManagerWith(t, plans, consumer, clk)
	t.Cleanup(stop)
	return m, plans
}

// runManager runs a manager of plans, as a daemon does, until stop, on a
// clock the test can skip ahead (clockOf).
func runManager(t testing.TB, plans []Plan, consumer event.Subscriber) (m *Manager, stop func()) {
	t.Helper()
	return runManagerWith(t, plans, consumer, newSkipClock())
}

func runManagerWith(t testing.TB, plans []Plan, consumer event.Subscriber, clk *skipClock) (m *Manager, stop func()) {
	t.Helper()
	bus := &event.Bus{}
	bus.Subscribe(consumer)
	m = NewManager(bus, NewMetrics(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.clock = clk
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- m.Run(ctx, plans, func() { close(ready) }) }()
	<-ready
	var once sync.Once
	return m, func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager run: %v", err)
			}
		})
	}
}

func readValid(t *testing.T, p Plan) *pki.Set {
	t.Helper()
	s, err := pki.LoadSet(p.Paths.Cert, p.Paths.Key, p.Paths.CA)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := p.Policy(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Validate(s, pol); err != nil {
		t.Fatalf("installed set does not validate: %v", err)
	}
	return s
}

func TestManagerIssuesMissingSetAndRenewsOnTime(t *testing.T) {
	cfg := testConfig(t, 30*time.Second, "28s")
	rec := newRecorder()
	m, plans := startManager(t, cfg, rec)
	first := rec.next(t, 10*time.Second)
	if first.Reason != event.ReasonInitial || first.OldSerial != "" || first.Generation != 1 || len(first.Files) != 3 {
		t.Fatalf("first change: %+v", first)
	}
	if got := pki.SerialHex(readValid(t, plans[0]).Leaf()); got != first.NewSerial {
		t.Fatalf("on disk serial %s, announced %s", got, first.NewSerial)
	}
	skipToRenewal(t, m, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Renewals == 1 })
	second := rec.next(t, 10*time.Second)
	if second.Reason != event.ReasonRenewal || second.OldSerial != first.NewSerial || second.Generation != 2 {
		t.Fatalf("renewal change: %+v", second)
	}
	if time.Until(second.NotAfter) < 25*time.Second {
		t.Fatalf("renewed certificate expires too soon: %s", second.NotAfter)
	}
	readValid(t, plans[0])
	// The state file is written once every consumer has accepted the set.
	s := waitState(t, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Renewals == 2 })
	if s.Serial != second.NewSerial || s.Renewals != 2 || s.Failures != 0 || s.NextRenewal.IsZero() || s.LastSuccess.IsZero() {
		t.Fatalf("state file: %+v", s)
	}
}

func TestConsumerRejectionRollsBackAndDoesNotRetryAtOnce(t *testing.T) {
	cfg := testConfig(t, 30*time.Second, "28s")
	cfg.Renewal.RetryMin, cfg.Renewal.RetryMax = time.Hour, time.Hour
	rec := newRecorder()
	rec.refuse = func(c event.Change) error {
		if c.Reason == event.ReasonRenewal {
			return errors.New("sensu-backend did not come back")
		}
		return nil
	}
	m, plans := startManager(t, cfg, rec)
	first := rec.next(t, 10*time.Second)
	skipToRenewal(t, m, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Renewals == 1 })
	bad := rec.next(t, 10*time.Second)
	back := rec.next(t, 5*time.Second)
	if bad.Reason != event.ReasonRenewal || back.Reason != event.ReasonRollback || back.OldSerial != bad.NewSerial || back.NewSerial != first.NewSerial || back.Generation != 1 {
		t.Fatalf("rollback sequence: bad %+v back %+v", bad, back)
	}
	if got := pki.SerialHex(readValid(t, plans[0]).Leaf()); got != first.NewSerial {
		t.Fatalf("after rollback the files hold %s, want %s", got, first.NewSerial)
	}
	s := waitState(t, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Failures > 0 })
	clockOf(m).skipTo(s.NextRenewal.Add(-time.Minute)) // retry-min (an hour) all but over
	rec.none(t, 300*time.Millisecond)
	if s.Failures != 1 || !strings.Contains(s.LastError, "did not come back") || time.Until(s.NextRenewal) < 30*time.Minute {
		t.Fatalf("state after rollback: %+v", s)
	}
}

// A valid set that no longer covers the plan's hosts is replaced, and the
// change says so: a reissue, not a first issue.
func TestHostsChangeIsAReissue(t *testing.T) {
	root := t.TempDir()
	cfg := testConfigAt(root, time.Hour, "")
	rec := newRecorder()
	_, stop := runManagerWith(t, mustPlans(t, cfg), rec, newSkipClock())
	first := rec.next(t, 10*time.Second)
	stop()

	cfg = testConfigAt(root, time.Hour, "")
	cfg.Certificates[0].Hosts = append(cfg.Certificates[0].Hosts, "sensu.example.com")
	startManager(t, cfg, rec)
	c := rec.next(t, 10*time.Second)
	if c.Reason != event.ReasonReissue || c.OldSerial != first.NewSerial {
		t.Fatalf("after a hosts change: reason %s old serial %s, want %s and %s", c.Reason, c.OldSerial, event.ReasonReissue, first.NewSerial)
	}
}

// issueFromCA writes a set for plan p signed by the CA in caDir to files
// in dir, as an operator's tool would, and returns their paths.
func issueFromCA(t testing.TB, caDir string, p Plan, dir string) ca.Paths {
	t.Helper()
	authority, err := ca.Load(caDir)
	if err != nil {
		t.Fatal(err)
	}
	is, err := authority.Issue(ca.Request{Name: p.Name, Profile: p.Profile, Hosts: p.Hosts, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ca.WriteFiles(dir, p.Name, is)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExternalReplacementIsFollowedAndBadOneUndone(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	rec := newRecorder()
	m, plans := startManager(t, cfg, rec)
	p := plans[0]
	first := rec.next(t, 10*time.Second)

	good := issueFromCA(t, p.CADir, p, t.TempDir())
	if err := os.Rename(good.Cert, p.Paths.Cert); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(good.Key, p.Paths.Key); err != nil {
		t.Fatal(err)
	}
	ext := rec.next(t, time.Second)
	if ext.Reason != event.ReasonExternal || ext.OldSerial != first.NewSerial {
		t.Fatalf("external change: %+v", ext)
	}
	if fi, err := os.Lstat(p.Paths.Cert); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the replacement was not adopted as a generation: %v %v", fi.Mode(), err)
	}

	// A cert from a CA nobody trusts, copied through the symlink.
	otherCA := t.TempDir()
	if _, err := ca.Init(otherCA, testCAOptions); err != nil {
		t.Fatal(err)
	}
	bad := issueFromCA(t, otherCA, p, t.TempDir())
	for src, dst := range map[string]string{bad.Cert: p.Paths.Cert, bad.Key: p.Paths.Key} {
		b, _ := os.ReadFile(src)
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := waitState(t, cfg.StateDir, "backend-1", func(s certstate.State) bool { return strings.Contains(s.LastError, "replacement rejected") })
	if !strings.Contains(s.LastError, "replacement rejected") {
		t.Fatalf("state does not show the rejection: %+v", s)
	}
	clockOf(m).skip(2 * externalGrace)
	waitOnDisk(t, p, ext.NewSerial)
	rec.none(t, 200*time.Millisecond)
}

func TestExecIssuerWithOpenSSL(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("openssl"), "openssl not on PATH (Debian package openssl)")
	cfg := testConfig(t, time.Hour, "")
	caDir := filepath.Join(cfg.StateDir, "ca")
	if _, err := ca.Init(caDir, testCAOptions); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "issue.sh")
	os.WriteFile(script, []byte(`#!/bin/sh
set -e
san=$(echo "$SENSU_TLSD_HOSTS" | sed 's/\([^,]*\)/DNS:\1/g; s/DNS:\([0-9.]*\)\(,\|$\)/IP:\1\2/g')
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=$SENSU_TLSD_COMMON_NAME" -addext "subjectAltName=$san" \
  -addext "extendedKeyUsage=serverAuth,clientAuth" -addext "keyUsage=digitalSignature" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -CA "`+caDir+`/ca.pem" -CAkey "`+caDir+`/ca-key.pem" \
  -keyout "$SENSU_TLSD_KEY_FILE" -out "$SENSU_TLSD_CERT_FILE" 2>&1
cp "`+caDir+`/ca.pem" "$SENSU_TLSD_CA_FILE"
`), 0o755)
	cfg.Certificates[0].Issuer = config.Issuer{Type: "exec", Exec: config.ExecIssuer{Command: []string{script}}}
	rec := newRecorder()
	_, plans := startManager(t, cfg, rec)
	c := rec.next(t, 20*time.Second)
	if c.Reason != event.ReasonInitial {
		t.Fatalf("change: %+v", c)
	}
	readValid(t, plans[0])
}

func TestExecIssuerFailureBacksOff(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	cfg.Renewal.RetryMin, cfg.Renewal.RetryMax = time.Hour, time.Hour
	cfg.Certificates[0].Issuer = config.Issuer{Type: "exec", Exec: config.ExecIssuer{Command: []string{"sh", "-c", "echo vault is sealed >&2; exit 2"}}}
	rec := newRecorder()
	startManager(t, cfg, rec)
	rec.none(t, 500*time.Millisecond)
	st, _ := certstate.ReadAll(cfg.StateDir)
	s := st["backend-1"]
	if s.Failures != 1 || !strings.Contains(s.LastError, "vault is sealed") || time.Until(s.NextRenewal) < 30*time.Minute {
		t.Fatalf("state after a failing exec issuer: %+v", s)
	}
}

func TestPlansRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		edit func(*config.Config)
		want string
	}{
		{func(c *config.Config) { c.Certificates[0].Profile = "backnd" }, "profile"},
		{func(c *config.Config) { c.Certificates[0].KeyMode = 0o644 }, "key-mode"},
		{func(c *config.Config) { c.Certificates[0].RenewBefore = "150%" }, "renew-before"},
		{func(c *config.Config) { c.Certificates[0].Issuer.Type = "vault" }, "local-ca, acme, exec, files"},
		{func(c *config.Config) { c.Certificates[0].Issuer.Type = "exec" }, "issuer.exec.command"},
		{func(c *config.Config) { c.Certificates = append(c.Certificates, c.Certificates[0]) }, "used twice"},
		{func(c *config.Config) {
			other := c.Certificates[0]
			other.Name = "backend-2"
			c.Certificates = append(c.Certificates, other)
		}, "is also the cert-file of certificates[0] (backend-1)"},
		{func(c *config.Config) { c.Certificates[0].Name = "../escape" }, "name"},
		{func(c *config.Config) { c.Certificates[0].Owner = "no-such-user-here" }, "no-such-user-here"},
		{func(c *config.Config) {
			c.Certificates[0].Issuer = config.Issuer{Type: "exec", Exec: config.ExecIssuer{Command: []string{"/bin/true"}}}
			c.Certificates[0].TrustedCA = "/nonexistent/ca.pem"
		}, "trusted-ca: /nonexistent/ca.pem"},
	} {
		cfg := testConfig(t, time.Hour, "")
		tc.edit(cfg)
		if _, err := resolve(cfg); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "certificates[") {
			t.Errorf("want an error naming the certificate and %q, got %v", tc.want, err)
		}
	}
}

func TestRetryBacksOffAndCaps(t *testing.T) {
	p := Plan{RetryMin: time.Minute, RetryMax: 10 * time.Minute, Emergency: time.Hour}
	now := time.Now()
	far := now.Add(30 * 24 * time.Hour)
	var got []time.Duration
	for f := 1; f <= 6; f++ {
		got = append(got, p.RetryAfter(f, far, now))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff %v, want %v", got, want)
		}
	}
	if d := p.RetryAfter(6, now.Add(30*time.Minute), now); d != time.Minute {
		t.Fatalf("emergency backoff %s, want retry-min", d)
	}
}

func TestRenewAtIsAThirdBeforeExpiryWithBoundedJitter(t *testing.T) {
	defaults := &config.Config{}
	defaults.ApplyDefaults()
	ratio, _, _ := config.ParseRenewBefore(defaults.Renewal.Before)
	p := Plan{Before: Before{Ratio: ratio}, Jitter: time.Hour, JitterShare: 0.5}
	now := time.Now()
	leaf := mustLeaf(now, 90*24*time.Hour)
	ideal := leaf.NotAfter.Add(-time.Duration(0.33 * float64(90*24*time.Hour)))
	if at := p.RenewAt(leaf); !at.Equal(ideal.Add(-30 * time.Minute)) {
		t.Fatalf("renew at %s, want half the jitter (30m) before %s", at, ideal)
	}
	p.JitterShare = 0.999
	short := mustLeaf(now, 10*time.Minute)
	if at := p.RenewAt(short); at.Before(short.NotAfter.Add(-4 * time.Minute)) {
		t.Fatalf("jitter not capped for a short lifetime: %s", at)
	}
}

func TestFollowedFilesAreValidatedAndAnnouncedNotTouched(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	cfg.Certificates[0].Issuer.Type = "files"
	p := mustPlans(t, cfg)[0]
	caDir := filepath.Join(cfg.StateDir, "ca")
	ca.Init(caDir, testCAOptions)
	os.MkdirAll(filepath.Dir(p.Paths.Cert), 0o755)
	src := issueFromCA(t, caDir, p, filepath.Dir(p.Paths.Cert))
	if src.Cert != p.Paths.Cert {
		t.Fatalf("test setup: %s vs %s", src.Cert, p.Paths.Cert)
	}
	rec := newRecorder()
	startManager(t, cfg, rec)
	rec.none(t, 200*time.Millisecond)
	tmp := issueFromCA(t, caDir, p, t.TempDir())
	os.Rename(tmp.Cert, p.Paths.Cert)
	os.Rename(tmp.Key, p.Paths.Key)
	c := rec.next(t, time.Second)
	if c.Reason != event.ReasonExternal {
		t.Fatalf("change: %+v", c)
	}
	if fi, _ := os.Lstat(p.Paths.Cert); fi.Mode()&os.ModeSymlink != 0 {
		t.Fatal("files owned by another tool were turned into symlinks")
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "current")); err == nil {
		t.Fatal("files issuer installed a generation")
	}
}

func mustLeaf(now time.Time, life time.Duration) *x509.Certificate {
	return &x509.Certificate{NotBefore: now, NotAfter: now.Add(life)}
}

// waitOnDisk polls the configured files until they hold a valid set with
// serial (or five seconds pass): an install links cert and key one after
// the other.
func waitOnDisk(t *testing.T, p Plan, serial string) {
	t.Helper()
	got := ""
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s, err := pki.LoadSet(p.Paths.Cert, p.Paths.Key, p.Paths.CA)
		if err != nil {
			continue
		}
		pol, err := p.Policy(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got = pki.SerialHex(s.Leaf()); got == serial && pki.Validate(s, pol) == nil {
			return
		}
	}
	t.Fatalf("the files hold serial %q, want a valid set with serial %s", got, serial)
}

// waitState polls the state file until ok accepts it (or two seconds pass)
// and returns the last state read.
func waitState(t *testing.T, stateDir, name string, ok func(certstate.State) bool) certstate.State {
	t.Helper()
	var s certstate.State
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err := certstate.ReadAll(stateDir)
		if err != nil {
			t.Fatal(err)
		}
		if s = st[name]; ok(s) {
			break
		}
	}
	return s
}

func TestApplyStopsRemovedAndStartsAddedCertificates(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	agent := config.Certificate{Name: "agent-1", Profile: "agent",
		CertFile: filepath.Join(filepath.Dir(cfg.StateDir), "etc", "agent-1.pem"),
		KeyFile:  filepath.Join(filepath.Dir(cfg.StateDir), "etc", "agent-1-key.pem"),
		CAFile:   filepath.Join(filepath.Dir(cfg.StateDir), "etc", "ca.pem"),
	}
	rec := newRecorder()
	m, plans := startManager(t, cfg, rec)
	rec.next(t, 10*time.Second)

	cfg.Certificates = append(cfg.Certificates, agent)
	both := mustPlans(t, cfg)
	if err := m.Apply(both); err != nil {
		t.Fatal(err)
	}
	if c := rec.next(t, 10*time.Second); c.Name != "agent-1" || c.Reason != event.ReasonInitial {
		t.Fatalf("added certificate: %+v", c)
	}
	rec.none(t, 300*time.Millisecond) // backend-1 is unchanged: not re-issued

	if err := m.Apply(both[1:]); err != nil {
		t.Fatal(err)
	}
	os.Remove(plans[0].Paths.Cert) // nobody follows backend-1 any more
	rec.none(t, 300*time.Millisecond)
	families, err := m.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetValue() == "backend-1" {
					t.Fatalf("metric %s still reports the removed certificate", f.GetName())
				}
			}
		}
	}
}

// TestReloadThatMovesPathsAnnouncesTheSetThere: a reload giving a
// certificate new paths publishes the same set at them, every path listed
// as new, so Sensu's files and services follow without waiting for the next
// renewal.
func TestReloadThatMovesPathsAnnouncesTheSetThere(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	changes := make(chan event.Change, 4)
	m, _ := startManager(t, cfg, event.SubscriberFunc(func(_ context.Context, c event.Change) error {
		changes <- c
		return nil
	}))
	first := <-changes
	moved := *cfg
	moved.Certificates = append([]config.Certificate(nil), cfg.Certificates...)
	c := &moved.Certificates[0]
	newDir := filepath.Join(filepath.Dir(filepath.Dir(c.CertFile)), "etc-2")
	c.CertFile, c.KeyFile, c.CAFile = filepath.Join(newDir, "b.pem"), filepath.Join(newDir, "b-key.pem"), filepath.Join(newDir, "ca.pem")
	if err := m.Apply(mustPlans(t, &moved)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-changes:
		if got.Reason != event.ReasonMoved || got.NewSerial != first.NewSerial || got.CertFile != c.CertFile ||
			!slices.Equal(got.Files, []string{c.CertFile, c.KeyFile, c.CAFile}) {
			t.Fatalf("change after the move: %+v (first %s)", got, first.NewSerial)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reload that moved the paths announced nothing")
	}
	if err := m.Apply(mustPlans(t, &moved)); err != nil { // the same paths again: nothing to say
		t.Fatal(err)
	}
	select {
	case got := <-changes:
		t.Fatalf("a reload with unchanged paths announced %+v", got)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestAMoveIsAnnouncedAgainUntilConsumersTakeIt: state.json keeps the old
// paths until consumers took the set at the new ones, so a move they
// refused (or one a killed daemon never got to announce) is announced at
// the next start, and only then recorded.
func TestAMoveIsAnnouncedAgainUntilConsumersTakeIt(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	rec := newRecorder()
	refuseReasons(rec, event.ReasonMoved)
	plans := mustPlans(t, cfg)
	m, stop := runManager(t, plans, rec)
	defer stop()
	first := rec.next(t, 10*time.Second)
	old := plans[0].Paths
	if s := waitState(t, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.CertFile != "" }); s.CertFile != old.Cert || s.CAFile != old.CA {
		t.Fatalf("the first start did not record the paths: %+v", s)
	}

	c := &cfg.Certificates[0]
	newDir := filepath.Join(filepath.Dir(filepath.Dir(c.CertFile)), "etc-2")
	c.CertFile, c.KeyFile, c.CAFile = filepath.Join(newDir, "b.pem"), filepath.Join(newDir, "b-key.pem"), filepath.Join(newDir, "ca.pem")
	moved := mustPlans(t, cfg)
	if err := m.Apply(moved); err != nil {
		t.Fatal(err)
	}
	if got := rec.next(t, 5*time.Second); got.Reason != event.ReasonMoved {
		t.Fatalf("after the reload: %+v, want the move announced", got)
	}
	s := waitState(t, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.LastError != "" })
	if s.CertFile != old.Cert || s.KeyFile != old.Key || s.CAFile != old.CA || !strings.Contains(s.LastError, moveAdvice) {
		t.Fatalf("state after consumers refused the move: %+v, want the old paths kept and the advice", s)
	}
	stop()

	refuseReasons(rec) // the service is fixed
	_, stop = runManager(t, moved, rec)
	defer stop()
	got := rec.next(t, 10*time.Second)
	if got.Reason != event.ReasonMoved || got.NewSerial != first.NewSerial || got.CertFile != c.CertFile {
		t.Fatalf("the restart announced %+v, want serial %s moved to %s", got, first.NewSerial, c.CertFile)
	}
	if s := waitState(t, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.CertFile == c.CertFile }); s.CertFile != c.CertFile || s.CAFile != c.CAFile {
		t.Fatalf("the move consumers took was not recorded: %+v", s)
	}
}

// TestRenewOnceHoldsTheLockWhileIssuing: `renew` and `issue --all` keep the
// certificate's lock from load to commit, as the daemon's attempts do, so a
// running daemon cannot recover or install under them. The issuer, run in
// the middle of the attempt, finds the lock taken.
func TestRenewOnceHoldsTheLockWhileIssuing(t *testing.T) {
	testpeer.NeedPeer(t, testpeer.HasProgram("flock"), "flock not on PATH (Debian package util-linux)")
	cfg := testConfig(t, time.Hour, "")
	p := mustPlans(t, cfg)[0]
	if _, err := ca.Init(p.CADir, testCAOptions); err != nil {
		t.Fatal(err)
	}
	src := issueFromCA(t, p.CADir, p, t.TempDir())
	script := filepath.Join(t.TempDir(), "issue.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
if flock -n "`+filepath.Join(p.Dir, ".lock")+`" true; then
  echo "the certificate's lock is free while its issuer runs" >&2
  exit 1
fi
cp "`+src.Cert+`" "$SENSU_TLSD_CERT_FILE"
cp "`+src.Key+`" "$SENSU_TLSD_KEY_FILE"
cp "`+src.CA+`" "$SENSU_TLSD_CA_FILE"
`), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.Certificates[0].Issuer = config.Issuer{Type: "exec", Exec: config.ExecIssuer{Command: []string{script}}}
	p = mustPlans(t, cfg)[0]
	m := NewManager(&event.Bus{}, NewMetrics(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := m.RenewOnce(context.Background(), p, RenewOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	readValid(t, p)
}

// TestRenewOnceIsDueWhenTheDaemonSaysSo: `renew` without --force follows
// the next renewal the daemon recorded for the installed serial (its own
// jitter draw, its backoff), not one computed with this process's jitter.
func TestRenewOnceIsDueWhenTheDaemonSaysSo(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	p := mustPlans(t, cfg)[0]
	m := NewManager(&event.Bus{}, NewMetrics(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	if _, err := m.RenewOnce(ctx, p, RenewOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	setNext := func(at time.Time) {
		st, err := certstate.Read(certstate.File(p.Dir))
		if err != nil {
			t.Fatal(err)
		}
		st.NextRenewal = at
		if err := writeState(p, st); err != nil {
			t.Fatal(err)
		}
	}
	next := time.Now().Add(50 * time.Minute).Truncate(time.Second)
	setNext(next)
	res, err := m.RenewOnce(ctx, p, RenewOptions{})
	if err != nil || !strings.Contains(res.Skipped, "renewal from "+next.Format(time.RFC3339)) {
		t.Fatalf("renew before the daemon's next renewal: %+v %v", res, err)
	}
	setNext(time.Now().Add(-time.Minute)) // due by the daemon's draw, 40m early by the plan's
	res, err = m.RenewOnce(ctx, p, RenewOptions{})
	if err != nil || res.Skipped != "" || res.Serial == "" {
		t.Fatalf("renew after the daemon's next renewal did not renew: %+v %v", res, err)
	}
}

// TestAMoveAfterAnInterruptedFirstIssueIsAnnounced: a stop while consumers
// take the first set still counts its paths as announced, so a restart
// that moves them tells consumers where the set is now.
func TestAMoveAfterAnInterruptedFirstIssueIsAnnounced(t *testing.T) {
	cfg := testConfig(t, time.Hour, "")
	waiting := make(chan struct{}, 1)
	_, stop := runManager(t, mustPlans(t, cfg), event.SubscriberFunc(func(ctx context.Context, c event.Change) error {
		waiting <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}))
	select {
	case <-waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the first issue reached no consumer")
	}
	stop()
	if s := waitState(t, cfg.StateDir, "backend-1", func(s certstate.State) bool { return s.Reason == interruptedReason }); s.Reason != interruptedReason {
		t.Fatalf("state after the interrupted first issue: %+v", s)
	}

	c := &cfg.Certificates[0]
	newDir := filepath.Join(filepath.Dir(filepath.Dir(c.CertFile)), "etc-2")
	c.CertFile, c.KeyFile, c.CAFile = filepath.Join(newDir, "b.pem"), filepath.Join(newDir, "b-key.pem"), filepath.Join(newDir, "ca.pem")
	rec := newRecorder()
	_, stop = runManager(t, mustPlans(t, cfg), rec)
	defer stop()
	if got := rec.next(t, 5*time.Second); got.Reason != event.ReasonMoved || got.CertFile != c.CertFile {
		t.Fatalf("the restart at new paths announced %+v, want the move", got)
	}
}
