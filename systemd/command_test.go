package systemd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
)

func changeOf(name, serial string, files ...string) event.Change {
	return event.Change{Name: name, Reason: event.ReasonRenewal, OldSerial: "01", NewSerial: serial, Generation: 2, Files: files}
}

func TestCommandGetsTheChangeInItsEnvironment(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env")
	cmd := Command{Service: "web", Args: []string{"sh", "-c", `{ env | grep ^SENSU_TLSD_; printf 'FILES<<%s>>' "$SENSU_TLSD_FILES"; } > "$0"`, out}}
	b := Batch{changeOf("web", "0A", "/etc/web/cert.pem", "/etc/web/key.pem"), changeOf("web-ca", "0B", "/etc/web/ca.pem")}
	if _, err := cmd.Run(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"SENSU_TLSD_SERVICE=web\n",
		"SENSU_TLSD_CERTIFICATES=web web-ca\n",
		"SENSU_TLSD_NEW_SERIALS=0A 0B\n",
		"SENSU_TLSD_OLD_SERIALS=01 01\n",
		"SENSU_TLSD_REASONS=renewal renewal\n",
		"FILES<</etc/web/cert.pem\n/etc/web/key.pem\n/etc/web/ca.pem>>",
		`"NewSerial":"0B"`,
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("environment lacks %q:\n%s", want, got)
		}
	}
}

func TestCommandFailuresAndTimeout(t *testing.T) {
	_, err := Command{Args: []string{"sh", "-c", "echo cannot reload >&2; exit 3"}}.Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "cannot reload") {
		t.Fatalf("failing command: %v", err)
	}
	start := time.Now()
	_, err = Command{Args: []string{"sleep", "30"}, Timeout: 200 * time.Millisecond}.Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("slow command: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("timeout did not stop the command (took %s)", time.Since(start))
	}
	if _, err := (Command{Args: []string{"/nonexistent/reload"}}).Run(context.Background(), nil); err == nil {
		t.Fatal("missing program succeeded")
	}
}
