package rotate

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/internal/event"
)

// BenchmarkExternalChangeToEvent measures, through the whole daemon path,
// the time from an operator's rename of a new certificate into place to the
// validated change reaching a subscriber: inotify, debounce, read,
// validation, adoption as a generation (with fsyncs) and publish.
func BenchmarkExternalChangeToEvent(b *testing.B) {
	root := b.TempDir()
	cfg := testConfigAt(root, time.Hour, "")
	rec := newRecorder()
	_, plans := startManager(b, cfg, rec)
	p := plans[0]
	select {
	case <-rec.ch:
	case <-time.After(10 * time.Second):
		b.Fatal("no initial issue")
	}
	// Two valid sets to alternate, so every rename changes the bytes.
	var sets [2][]byte
	for i := range sets {
		out := issueFromCA(b, p.CADir, p, filepath.Join(root, "src", string(rune('a'+i))))
		sets[i], _ = os.ReadFile(out.Cert)
		key, _ := os.ReadFile(out.Key)
		os.WriteFile(filepath.Join(root, "key"+string(rune('a'+i))), key, 0o600)
	}
	tmp := filepath.Join(filepath.Dir(p.Paths.Cert), ".incoming")
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		key, _ := os.ReadFile(filepath.Join(root, "key"+string(rune('a'+i%2))))
		os.WriteFile(tmp+"-key", key, 0o600)
		os.WriteFile(tmp, sets[i%2], 0o644)
		os.Rename(tmp+"-key", p.Paths.Key)
		os.Rename(tmp, p.Paths.Cert)
		select {
		case c := <-rec.ch:
			if c.Reason != event.ReasonExternal {
				b.Fatalf("change %+v", c)
			}
			lat = append(lat, time.Since(start))
		case <-time.After(5 * time.Second):
			b.Fatal("replacement not announced")
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
}
