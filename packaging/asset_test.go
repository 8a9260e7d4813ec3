package packaging_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sensu-tlsd/sensu-tlsd/internal/testpeer"
)

// The core/v2 resources of `sensuctl create -f`, field for field as
// Sensu documents them (github.com/sensu/core/v2 is not served by the
// module proxy here). Decoding is strict: a misspelt key fails.
type (
	resource struct {
		Type       string         `yaml:"type"`
		APIVersion string         `yaml:"api_version"`
		Metadata   objectMeta     `yaml:"metadata"`
		Spec       map[string]any `yaml:"spec"`
	}
	objectMeta struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	assetSpec struct {
		URL     string            `yaml:"url"`
		Sha512  string            `yaml:"sha512"`
		Filters []string          `yaml:"filters"`
		Headers map[string]string `yaml:"headers"`
		Builds  []assetBuild      `yaml:"builds"`
	}
	assetBuild struct {
		URL     string            `yaml:"url"`
		Sha512  string            `yaml:"sha512"`
		Filters []string          `yaml:"filters"`
		Headers map[string]string `yaml:"headers"`
	}
	checkSpec struct {
		Command              string            `yaml:"command"`
		Subscriptions        []string          `yaml:"subscriptions"`
		Interval             uint32            `yaml:"interval"`
		Cron                 string            `yaml:"cron"`
		Publish              bool              `yaml:"publish"`
		Timeout              uint32            `yaml:"timeout"`
		TTL                  int64             `yaml:"ttl"`
		Handlers             []string          `yaml:"handlers"`
		RuntimeAssets        []string          `yaml:"runtime_assets"`
		OutputMetricFormat   string            `yaml:"output_metric_format"`
		OutputMetricHandlers []string          `yaml:"output_metric_handlers"`
		OutputMetricTags     []map[string]any  `yaml:"output_metric_tags"`
		EnvVars              []string          `yaml:"env_vars"`
		ProxyEntityName      string            `yaml:"proxy_entity_name"`
		RoundRobin           bool              `yaml:"round_robin"`
		Stdin                bool              `yaml:"stdin"`
		Secrets              []map[string]any  `yaml:"secrets"`
		Pipelines            []map[string]any  `yaml:"pipelines"`
		CheckHooks           []map[string]any  `yaml:"check_hooks"`
		HighFlapThreshold    uint32            `yaml:"high_flap_threshold"`
		LowFlapThreshold     uint32            `yaml:"low_flap_threshold"`
		Subdue               map[string]any    `yaml:"subdue"`
		ExtendedAttributes   map[string]string `yaml:"extended_attributes"`
	}
)

var (
	sensuName = regexp.MustCompile(`\A[\w.\-]+\z`)
	sha512Hex = regexp.MustCompile(`\A[0-9a-f]{128}\z`)
	// metricFormats are the output_metric_format values Sensu knows.
	metricFormats = []string{"nagios_perfdata", "graphite_plaintext", "influxdb_line", "opentsdb_line", "prometheus_text"}
)

// strict re-decodes v (a spec as a generic map) into out, refusing keys
// out does not have.
func strict(t *testing.T, v any, out any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		t.Fatalf("spec does not match Sensu's schema: %v\n%s", err, b)
	}
}

// parseResources reads a `sensuctl create -f` file: YAML documents, each a
// core/v2 resource.
func parseResources(t *testing.T, path string) (assets map[string]assetSpec, checks map[string]checkSpec) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	assets, checks = map[string]assetSpec{}, map[string]checkSpec{}
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	for {
		var r resource
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if r.APIVersion != "core/v2" || !sensuName.MatchString(r.Metadata.Name) {
			t.Fatalf("%s: %s %q: api_version %q, want core/v2 and a valid name", path, r.Type, r.Metadata.Name, r.APIVersion)
		}
		switch r.Type {
		case "Asset":
			var a assetSpec
			strict(t, r.Spec, &a)
			assets[r.Metadata.Name] = a
		case "CheckConfig":
			var c checkSpec
			strict(t, r.Spec, &c)
			checks[r.Metadata.Name] = c
		default:
			t.Fatalf("%s: unexpected resource type %q", path, r.Type)
		}
	}
	return assets, checks
}

// TestAssetLayoutAndResources runs `make asset` and checks what Sensu
// needs: bin/sensu-tlsd in the tarball, its SHA-512, and resources that
// pass Sensu's validation and run the check from the asset.
func TestAssetLayoutAndResources(t *testing.T) {
	_, err := exec.LookPath("make")
	testpeer.NeedPeer(t, err == nil, "make missing (Debian package make)")
	dist := t.TempDir()
	cmd := exec.Command("make", "asset", "DIST="+dist, "VERSION=1.2.3")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make asset: %v\n%s", err, out)
	}
	tarball := filepath.Join(dist, "sensu-tlsd_1.2.3_linux_amd64.tar.gz")
	data, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(data)
	want := hex.EncodeToString(sum[:])
	sums, err := os.ReadFile(filepath.Join(dist, "sensu-tlsd_1.2.3_sha512-checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(sums); got != want+"  sensu-tlsd_1.2.3_linux_amd64.tar.gz\n" {
		t.Fatalf("sha512-checksums.txt: %q, want the tarball's %s", got, want)
	}

	// Sensu unpacks the tarball and puts bin/ on the check's PATH.
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	unpacked := t.TempDir()
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name+" "+h.FileInfo().Mode().String())
		if h.Typeflag == tar.TypeReg {
			dst := filepath.Join(unpacked, h.Name)
			os.MkdirAll(filepath.Dir(dst), 0o755)
			b, _ := io.ReadAll(tr)
			os.WriteFile(dst, b, h.FileInfo().Mode().Perm())
		}
	}
	if got := strings.Join(names, ", "); got != "bin/ drwxr-xr-x, bin/sensu-tlsd -rwxr-xr-x" {
		t.Fatalf("tarball entries: %s, want bin/ and bin/sensu-tlsd", got)
	}

	for _, file := range []string{filepath.Join(repoRoot(t), "examples", "sensu-tlsd-asset.yml"), filepath.Join(dist, "sensu-tlsd-asset.yml")} {
		assets, checks := parseResources(t, file)
		a, ok := assets["sensu-tlsd"]
		if !ok || len(a.Builds) != 1 {
			t.Fatalf("%s: want Asset sensu-tlsd with one build, got %+v", file, assets)
		}
		b := a.Builds[0]
		if !sha512Hex.MatchString(b.Sha512) || !strings.HasPrefix(b.URL, "https://") || len(b.Filters) == 0 {
			t.Errorf("%s: asset build %+v: Sensu requires a url and a 128-hex sha512", file, b)
		}
		c, ok := checks["sensu-tlsd-agent-certificates"]
		if !ok || !strings.HasPrefix(c.Command, "sensu-tlsd check ") || !contains(c.RuntimeAssets, "sensu-tlsd") ||
			c.Interval == 0 || len(c.Subscriptions) == 0 || !contains(metricFormats, c.OutputMetricFormat) || c.OutputMetricFormat != "prometheus_text" {
			t.Errorf("%s: check %+v", file, c)
		}
		if file == filepath.Join(dist, "sensu-tlsd-asset.yml") {
			if b.Sha512 != want || !strings.HasSuffix(b.URL, "/sensu-tlsd_1.2.3_linux_amd64.tar.gz") {
				t.Errorf("dist resource: sha512 %s url %s, want the build's %s and file name", b.Sha512, b.URL, want)
			}
			runCheck(t, unpacked, c.Command)
		}
	}
}

// runCheck runs the check's command as the agent would, with the asset's
// bin/ first on PATH and no sensu-tlsd config or daemon, against an
// agent.yml that trusts a CA (an agent in the cutover's second phase).
func runCheck(t *testing.T, assetDir, command string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(assetDir, "bin", "sensu-tlsd")
	if out, err := exec.Command(bin, "ca", "init", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("sensu-tlsd ca init: %v\n%s", err, out)
	}
	agentYML := filepath.Join(dir, "agent.yml")
	os.WriteFile(agentYML, []byte("backend-url: [wss://127.0.0.1:8081]\ntrusted-ca-file: "+filepath.Join(dir, "ca.pem")+"\n"), 0o644)
	command = strings.Replace(command, "/etc/sensu/agent.yml", agentYML, 1)
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = []string{"PATH=" + filepath.Join(assetDir, "bin") + ":/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "# OK: ") || !strings.Contains(string(out), "sensu_tlsd_certificate_expiry_seconds{") {
		t.Fatalf("the check from the asset: %v\n%s\nwant exit 0 and Prometheus text with the status line as a comment", err, out)
	}
	t.Logf("check from the asset:\n%s", out)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
