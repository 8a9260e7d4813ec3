package logging

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestJournalHandlerPrefixesPriorityAndDropsTime(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(NewJournalHandler(&out, slog.LevelDebug))
	log.Debug("probe", "n", 1)
	log.Info("renewed", "name", "backend-1")
	log.Warn("replacement rejected", "error", "bad key")
	log.Error("renewal failed", "reason", "issue")
	log.Log(context.Background(), slog.LevelError+4, "worse than error")
	want := []string{
		`<7>msg=probe n=1`,
		`<6>msg=renewed name=backend-1`,
		`<4>msg="replacement rejected" error="bad key"`,
		`<3>msg="renewal failed" reason=issue`,
		`<3>msg="worse than error"`,
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("journal lines:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
}

func TestJournalHandlerKeepsAttrsAndGroups(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(NewJournalHandler(&out, slog.LevelInfo)).With("cert", "agent-1").WithGroup("g")
	log.Info("a\nb", "time", "kept inside a group")
	if got, want := out.String(), "<6>msg=\"a\\nb\" cert=agent-1 g.time=\"kept inside a group\"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestToJournalComparesDeviceAndInode(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	for stream, want := range map[string]bool{
		fmt.Sprintf("%d:%d", st.Dev, st.Ino):   true,
		fmt.Sprintf("%d:%d", st.Dev, st.Ino+1): false, // inherited, but stderr is elsewhere now
		"":                                     false,
		"garbage":                              false,
	} {
		if got := ToJournal(f, stream); got != want {
			t.Errorf("ToJournal(%q) = %v, want %v", stream, got, want)
		}
	}
}

func TestNewPicksTheHandler(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv(JournalStreamEnv, fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	New(f, "text", slog.LevelInfo).Warn("to the journal")
	New(f, "json", slog.LevelInfo).Warn("to a shipper")
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != `<4>msg="to the journal"` || !strings.HasPrefix(lines[1], `{"time":`) {
		t.Fatalf("under JOURNAL_STREAM text is journal-style and json stays json; got:\n%s", b)
	}
}
