package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

// libraries may be imported by every package of the module. They import
// no project package but each other.
var libraries = []string{
	"internal/event", // the event contract: standard library only
	"internal/certstate",
	"internal/pki",
	"internal/watch",
	"internal/flock",
	"internal/atomicfile",
}

// testSupport is imported by tests only, never by a production package.
var testSupport = []string{
	"internal/agentapitest",
	"internal/etcdtest",
	"internal/golden",
	"internal/logbuf",
	"internal/proxytest",
	"internal/standin",
	"internal/standintest",
	"internal/systemdtest",
	"internal/testbin",
	"internal/testca",
	"internal/testpeer",
}

// mayImport states, for every package of the module, the project packages
// other than the libraries it may import. A new package gets a line here
// (the test fails for a package it does not list); an import the table
// does not allow fails until it is added here, which is the moment to ask
// whether it belongs.
var mayImport = map[string][]string{
	// The command wires everything; nothing imports it.
	"cmd/sensu-tlsd": {"config", "config/migrate", "config/sensu", "internal/agentcutover", "internal/cluster", "internal/daemon",
		"internal/enrol", "internal/inventory", "internal/logging", "internal/regenerate", "internal/reload", "internal/sensuevent",
		"proxy", "rotate", "rotate/ca", "systemd"},
	"bench/loadclient": nil,
	"packaging":        nil, // its tests drive make package and dpkg

	// Configuration: sensu-tlsd's own file, then Sensu's files (a library
	// of Sensu knowledge), then the cutover that acts on a node.
	"config":         nil,
	"config/sensu":   {"config"},
	"config/migrate": {"config", "config/sensu", "internal/cluster", "internal/inventory", "internal/reload", "systemd"},

	// The renewal engine and its parts. The enrol issuer reads the agent's
	// identity from config/sensu and speaks internal/enrol's protocol.
	"rotate":         {"config", "config/sensu", "internal/enrol", "internal/reload", "rotate/ca", "rotate/install"},
	"rotate/ca":      nil,
	"rotate/install": nil,

	// Consumers of certificate changes (internal/event) and the daemon's
	// other services.
	"proxy":                 {"config", "internal/reload"},
	"systemd":               {"config", "config/sensu", "internal/cluster"},
	"internal/regenerate":   {"config", "config/sensu"},
	"internal/inventory":    {"config", "config/sensu", "rotate/ca"},
	"internal/sensuevent":   {"config", "internal/inventory", "internal/reload"},
	"internal/agentcutover": {"config", "config/sensu", "internal/reload", "systemd"},
	"internal/enrol":        {"config", "config/sensu", "internal/cluster", "internal/reload", "rotate/ca"},
	"internal/cluster":      {"config/sensu"},

	// The daemon process runs the engine and hands its changes on.
	"internal/daemon":  {"config", "internal/reload", "rotate"},
	"internal/reload":  {"config"},
	"internal/logging": nil,

	"internal/layering": nil,

	// Test support.
	"internal/agentapitest": nil,
	"internal/etcdtest":     {"config/sensu", "internal/testpeer", "rotate/ca"},
	"internal/golden":       nil,
	"internal/logbuf":       nil,
	"internal/proxytest":    nil,
	"internal/standin":      {"config/sensu"},
	"internal/standintest":  {"internal/testbin", "internal/testca"},
	"internal/systemdtest":  {"internal/testpeer"},
	"internal/testbin":      nil,
	"internal/testca":       nil,
	"internal/testpeer":     nil,
}

// upcoming are packages the table lists before they are in the tree (other
// branches add them). Any other line for a package that does not exist
// fails, so the table does not keep dead lines.
var upcoming []string

// engine is the renewal engine: rotate and the ACME stack it brings
// (certmagic, acmez). zap is not on the list: the etcd client that
// internal/cluster needs logs with it too.
var engine = []string{"rotate", "github.com/caddyserver/certmagic", "github.com/mholt/acmez"}

// consumers react to certificate changes or run beside the engine; the
// engine must not depend on them, nor may they on the engine.
var consumers = []string{"proxy", "systemd", "config/migrate", "internal/regenerate", "internal/inventory", "internal/sensuevent",
	"internal/agentcutover", "internal/daemon", "cmd/sensu-tlsd"}

// shared are the project's ways to reach Sensu's own services, used by
// the engine (the enrol issuer speaks internal/enrol, whose etcd store
// opens the cluster through internal/cluster) and the consumers alike:
// they must not pull in the engine either.
var shared = []string{"internal/enrol", "internal/cluster"}

// engineDebt are consumers that still import the engine. The test fails
// once one no longer does, so the entry goes with the debt.
var engineDebt = map[string]string{}

type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Deps       []string
	Module     *struct{ Path string }
}

// graph is the module's packages (by path relative to the module) and
// every package they depend on (by import path).
type graph struct {
	module string
	all    map[string]*pkg
	own    []string // the module's packages, relative
}

var (
	loadOnce   sync.Once
	loaded     *graph
	loadFailed error
)

// load runs go list once for all the tests.
func load(t *testing.T) *graph {
	t.Helper()
	loadOnce.Do(func() { loaded, loadFailed = goList() })
	if loadFailed != nil {
		t.Fatal(loadFailed)
	}
	return loaded
}

func goList() (*graph, error) {
	mod, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m: %v", err)
	}
	g := &graph{module: strings.TrimSpace(string(mod)), all: map[string]*pkg{}}
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard,Imports,Deps,Module", g.module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps %s/...: %v\n%s", g.module, err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		g.all[p.ImportPath] = &p
		if rel, ok := g.rel(p.ImportPath); ok {
			g.own = append(g.own, rel)
		}
	}
	return g, nil
}

// rel is path relative to the module, and whether it is in the module.
func (g *graph) rel(path string) (string, bool) {
	if p := g.all[path]; p == nil || p.Module == nil || p.Module.Path != g.module {
		return "", false
	}
	return strings.TrimPrefix(path, g.module+"/"), true
}

func (g *graph) abs(rel string) string { return g.module + "/" + rel }

// chain is the import path from one package to dep, for messages.
func (g *graph) chain(from, dep string) string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == dep {
			var steps []string
			for ; p != ""; p = prev[p] {
				steps = append([]string{strings.TrimPrefix(p, g.module+"/")}, steps...)
			}
			return strings.Join(steps, " → ")
		}
		if g.all[p] == nil {
			continue
		}
		for _, i := range g.all[p].Imports {
			if _, seen := prev[i]; !seen {
				prev[i] = p
				queue = append(queue, i)
			}
		}
	}
	return from + " → … → " + dep
}

// depsMatching are, for each of paths (module-relative or import paths)
// that rel depends on, the first dependency that is it or inside it.
func (g *graph) depsMatching(rel string, paths []string) []string {
	var hits []string
	for _, p := range paths {
		own := !strings.Contains(p, ".") // a project package: itself, not the packages beneath it
		if own {
			p = g.abs(p)
		}
		for _, d := range g.all[g.abs(rel)].Deps {
			if d == p || !own && strings.HasPrefix(d, p+"/") {
				hits = append(hits, d)
				break
			}
		}
	}
	return hits
}

func TestEveryPackageImportsOnlyWhatItsRuleAllows(t *testing.T) {
	g := load(t)
	for _, rel := range g.own {
		isLib := slices.Contains(libraries, rel)
		allowed, listed := mayImport[rel]
		if !listed && !isLib {
			t.Errorf("%s is not in internal/layering's table: add a line to mayImport naming the project packages it may import (or add it to libraries)", rel)
			continue
		}
		for _, imp := range g.all[g.abs(rel)].Imports {
			dep, ok := g.rel(imp)
			switch {
			case !ok, slices.Contains(libraries, dep), slices.Contains(allowed, dep):
			case isLib:
				t.Errorf("%s imports %s: a library (internal/layering's libraries) imports no project package but another library", rel, dep)
			default:
				t.Errorf("%s imports %s, which its line in internal/layering's mayImport does not allow (it allows %v and the libraries)", rel, dep, allowed)
			}
		}
	}
	named := slices.Concat(libraries, testSupport)
	for rel := range mayImport {
		named = append(named, rel)
	}
	for _, rel := range named {
		if !slices.Contains(g.own, rel) && !slices.Contains(upcoming, rel) {
			t.Errorf("internal/layering names %s, which is not a package of the module: remove it", rel)
		}
	}
}

func TestTheEventContractNeedsOnlyTheStandardLibrary(t *testing.T) {
	g := load(t)
	for _, d := range g.all[g.abs("internal/event")].Deps {
		if p := g.all[d]; p == nil || !p.Standard {
			t.Errorf("internal/event depends on %s (%s): the event contract must build with the standard library alone", d, g.chain(g.abs("internal/event"), d))
		}
	}
}

func TestConsumersDoNotPullInTheRenewalEngine(t *testing.T) {
	g := load(t)
	for _, rel := range slices.Concat([]string{"config", "config/sensu"}, shared, consumers[:len(consumers)-2]) {
		if !slices.Contains(g.own, rel) {
			continue // upcoming
		}
		hits := g.depsMatching(rel, engine)
		if why, debt := engineDebt[rel]; debt {
			if len(hits) == 0 {
				t.Errorf("%s no longer depends on the renewal engine: remove it from internal/layering's engineDebt and its rotate imports from mayImport", rel)
			} else {
				t.Logf("known debt: %s depends on the renewal engine (%s): %s", rel, g.chain(g.abs(rel), hits[0]), why)
			}
			continue
		}
		for _, h := range hits {
			t.Errorf("%s depends on %s (%s): a consumer of certificate changes must not pull in the renewal engine; it learns of changes through internal/event", rel, h, g.chain(g.abs(rel), h))
		}
	}
}

func TestTheRenewalEngineImportsNoConsumer(t *testing.T) {
	g := load(t)
	for _, rel := range g.own {
		if rel != "rotate" && !strings.HasPrefix(rel, "rotate/") {
			continue
		}
		for _, h := range g.depsMatching(rel, consumers) {
			t.Errorf("%s depends on %s (%s): the renewal engine must not depend on a consumer of its changes", rel, h, g.chain(g.abs(rel), h))
		}
	}
}

func TestNoProductionPackageImportsTestSupport(t *testing.T) {
	g := load(t)
	for _, rel := range g.own {
		if slices.Contains(testSupport, rel) || rel == "internal/layering" {
			continue
		}
		for _, h := range g.depsMatching(rel, testSupport) {
			t.Errorf("%s depends on the test support %s (%s): test support is for _test.go files only", rel, h, g.chain(g.abs(rel), h))
		}
	}
}

func TestConfigImportsOnlyLibraries(t *testing.T) {
	g := load(t)
	for _, d := range g.all[g.abs("config")].Deps {
		if rel, ok := g.rel(d); ok && !slices.Contains(libraries, rel) {
			t.Errorf("config depends on %s (%s): the configuration imports no project package but the internal libraries", rel, g.chain(g.abs("config"), d))
		}
	}
}
