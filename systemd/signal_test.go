package systemd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/internal/standintest"
	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// child is a real process under test; done closes when it has exited.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startChild runs a shell script that signals readiness by writing its pid
// file, and returns the child and the pid file.
func startChild(t *testing.T, script string) (*child, string) {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	cmd := exec.Command("sh", "-c", script+"\necho $$ > "+pidFile+"\nwhile :; do sleep 0.05; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-c.done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(b)) != "" {
			return c, pidFile
		}
		if time.Now().After(deadline) {
			t.Fatal("child never wrote its pid file")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitExit(t *testing.T, c *child, within time.Duration) (exited bool) {
	t.Helper()
	select {
	case <-c.done:
		return true
	case <-time.After(within):
		return false
	}
}

func TestPIDSignalReachesRealProcesses(t *testing.T) {
	// A daemon that ignores SIGHUP survives it.
	ignorer, pidFile := startChild(t, "trap '' HUP")
	if _, err := (PIDSignal{PIDFile: pidFile, Signal: syscall.SIGHUP}).Run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if waitExit(t, ignorer, 300*time.Millisecond) {
		t.Fatalf("a process ignoring SIGHUP exited: %v", ignorer.cmd.ProcessState)
	}

	// One that dies on it (like sensu-agent, 129 = 128 + SIGHUP) does.
	dier, pidFile := startChild(t, "trap 'exit 129' HUP")
	if _, err := (PIDSignal{PIDFile: pidFile, Signal: syscall.SIGHUP}).Run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !waitExit(t, dier, 5*time.Second) || dier.cmd.ProcessState.ExitCode() != 129 {
		t.Fatalf("the SIGHUP-dying child: %v", dier.cmd.ProcessState)
	}

	// USR1 to a fixed pid.
	usr1, _ := startChild(t, "trap 'exit 42' USR1")
	if _, err := (PIDSignal{PID: usr1.cmd.Process.Pid, Signal: syscall.SIGUSR1}).Run(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !waitExit(t, usr1, 5*time.Second) || usr1.cmd.ProcessState.ExitCode() != 42 {
		t.Fatalf("USR1 child: %v", usr1.cmd.ProcessState)
	}
}

func TestPIDSignalErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pid")
	writeFile(t, bad, "not-a-pid\n")
	one := filepath.Join(dir, "one.pid")
	writeFile(t, one, "1\n")
	for _, f := range []string{bad, one, filepath.Join(dir, "missing.pid")} {
		_, err := PIDSignal{PIDFile: f, Signal: syscall.SIGHUP}.Run(context.Background(), nil)
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Fatalf("pid file %s: error %v should name the file", f, err)
		}
	}
}

func FuzzParsePID(f *testing.F) {
	for _, s := range []string{"123\n", " 42 ", "0", "-1", "1", "abc", "99999999999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pid, err := ParsePID(b)
		if err == nil && pid <= 1 {
			t.Fatalf("ParsePID(%q) = %d: pids 0, 1 and negative must be refused", b, pid)
		}
	})
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"HUP": syscall.SIGHUP, "sigusr2": syscall.SIGUSR2, " TERM ": syscall.SIGTERM} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseSignal("KILL"); err == nil {
		t.Error("KILL accepted")
	}
}

// TestSensuAgentPresetNeverSendsSIGHUP builds the sensu-agent preset from
// every config that could reach the agent with SIGHUP and checks each is
// refused, then drives the agent preset's allowed actions against a real
// process that dies on SIGHUP and records it.
func TestSensuAgentPresetNeverSendsSIGHUP(t *testing.T) {
	for _, sc := range []config.Service{
		{Name: "agent", Preset: PresetSensuAgent, Action: "signal", Signal: "HUP", PIDFile: "/run/sensu-agent.pid"},
		{Name: "agent", Preset: PresetSensuAgent, Action: "signal", Signal: "SIGHUP"},
		{Name: "agent", Preset: PresetSensuAgent, Action: "reload"},
	} {
		_, err := FromConfig(&config.Config{Services: []config.Service{sc}}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "exit 129") || !strings.Contains(err.Error(), "services[0] (agent)") {
			t.Fatalf("%+v: got %v, want a refusal naming the service and why", sc, err)
		}
	}

	port := testpeer.FreePort(t)
	hupFile := filepath.Join(t.TempDir(), "hup")
	agent := exec.Command(standintest.Binary(t), "agent", "--api-port", fmt.Sprint(port), "--hup-file", hupFile)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	pidFile := filepath.Join(t.TempDir(), "agent.pid")
	writeFile(t, pidFile, fmt.Sprint(agent.Process.Pid))
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))

	cfg := &config.Config{
		Certificates: []config.Certificate{{Name: "agent-ca", Services: []string{"agent-wait", "agent-command"}}},
		Services: []config.Service{
			{Name: "agent-wait", Preset: PresetSensuAgent, Action: "none"},
			{Name: "agent-command", Preset: PresetSensuAgent, Action: "command", Command: []string{"sh", "-c", "echo ran >> " + hupFile + ".cmd"},
				Health: config.Health{URL: fmt.Sprintf("http://127.0.0.1:%d/healthz", port), Timeout: 5 * time.Second}},
		},
		ServiceActions: config.ActionPolicy{Coalesce: time.Millisecond},
	}
	d, err := FromConfig(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.CertificateChanged(context.Background(), changeOf("agent-ca", "0A")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(hupFile); err == nil {
		t.Fatal("the agent stand-in received SIGHUP")
	}
	if err := agent.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("agent stand-in is gone: %v", err)
	}
	if b, err := os.ReadFile(hupFile + ".cmd"); err != nil || string(b) != "ran\n" {
		t.Fatalf("command action output %q %v", b, err)
	}
}
