package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
)

// file is one file's content in a workspace; nil data means absent.
type file struct {
	disk    []byte
	onDisk  bool
	data    []byte
	present bool
}

// workspace holds the node's files in memory while phases edit them, so a
// phase is computed and checked in full before anything is written.
type workspace struct {
	node  *Node
	state *State
	files map[string]*file
}

func newWorkspace(n *Node, st *State) *workspace {
	return &workspace{node: n, state: st, files: map[string]*file{}}
}

func (w *workspace) get(path string) (*file, error) {
	if f, ok := w.files[path]; ok {
		return f, nil
	}
	b, err := os.ReadFile(path)
	f := &file{}
	switch {
	case err == nil:
		f.disk, f.onDisk, f.data, f.present = b, true, b, true
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	w.files[path] = f
	return f, nil
}

func (w *workspace) set(path string, data []byte) {
	f, err := w.get(path)
	if err != nil {
		f = &file{}
		w.files[path] = f
	}
	f.data, f.present = data, data != nil
}

// each runs f on the role's YAML file and on each of its env files, then
// keeps the edited bytes.
func (w *workspace) each(r sensu.Role, yml string, envs []string, f func(path string, s sensu.Settings) error) error {
	if yml != "" {
		cur, err := w.get(yml)
		if err != nil {
			return err
		}
		if cur.present {
			d, err := sensu.Parse(yml, cur.data)
			if err != nil {
				return err
			}
			if err := f(yml, d); err != nil {
				return err
			}
			out, err := d.Bytes()
			if err != nil {
				return err
			}
			cur.data = out
		}
	}
	for _, p := range envs {
		cur, err := w.get(p)
		if err != nil {
			return err
		}
		if !cur.present {
			continue
		}
		e, err := sensu.ParseEnvFile(p, cur.data, r)
		if err != nil {
			return err
		}
		if err := f(p, e); err != nil {
			return err
		}
		cur.data = e.Bytes()
	}
	return nil
}

// changed lists the files whose content differs from the disk, sorted.
func (w *workspace) changed() []string {
	var out []string
	for p, f := range w.files {
		if f.present != f.onDisk || string(f.data) != string(f.disk) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// check lints every Sensu YAML file among paths against its content
// before (an edit may keep a problem, never add one).
func (w *workspace) check(paths []string, before func(path string) []byte) error {
	var errs []error
	for _, p := range paths {
		var role sensu.Role
		switch p {
		case w.node.Files.Backend:
			role = sensu.Backend
		case w.node.Files.Agent:
			role = sensu.Agent
		default:
			continue
		}
		f := w.files[p]
		if !f.present {
			continue
		}
		if err := sensu.CheckNoNewErrors(p, before(p), f.data, role, sensu.LintOptions{User: w.node.LintUser}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// FileDiff is one file's change in a phase.
type FileDiff struct {
	Path string
	Diff string // unified diff; "" when unchanged
}

// StepPlan is what one phase would do on this node.
type StepPlan struct {
	Phase   Phase
	Summary string
	Done    bool // the node is at or past this phase
	// Skip says why the phase does nothing on this node ("" when it
	// applies): it is passed over, never required.
	Skip  string
	Files []FileDiff
	Needs []Need
	Notes []string
	// Steps are the restarts and the reload apply would do after writing
	// the files, in order.
	Steps []Step
	// Refused is the lint check apply would stop this phase with (run
	// once the phase's certificates are ready), nil when it passes.
	Refused error
	// Blocked is the plaintext-agent gate's refusal, for the next phase
	// only (later ones depend on what the fleet does meanwhile).
	Blocked error
}

// Plan simulates every phase from the node's current one to the last, in
// order, and returns each phase's diffs; nothing is written. A phase whose
// certificate the sensu-tlsd config does not name is an error: its diff
// would show TLS keys apply can never write. The next phase also goes
// through the plaintext-agent gate apply would run (o.Agents).
func Plan(ctx context.Context, n *Node, o Options) ([]StepPlan, Phase, error) {
	st, err := LoadState(n)
	if err != nil {
		return nil, 0, err
	}
	w := newWorkspace(n, st.clone())
	var plans []StepPlan
	next := nextPhase(n, st.Phase)
	for p := Bridge; p <= Last; p++ {
		s := steps[p]
		sp := StepPlan{Phase: p, Summary: s.summary(n), Done: p <= st.Phase, Skip: s.skip(n)}
		if sp.Skip != "" {
			plans = append(plans, sp)
			continue
		}
		sp.Needs = s.needs(n)
		if s.notes != nil {
			sp.Notes = s.notes(n)
		}
		if p > st.Phase {
			ready := true
			for _, need := range sp.Needs {
				if err := need.unnamed; err != nil {
					return nil, 0, fmt.Errorf("phase %d (%s) needs %s for %s: %w", p, p, need.What, need.Why, err)
				}
				ready = ready && need.Check() == nil
			}
			before := snapshot(w)
			if err := s.apply(w); err != nil {
				return nil, 0, fmt.Errorf("phase %d (%s): %w", p, p, err)
			}
			changed := w.changedSince(before)
			for _, path := range changed {
				f := w.files[path]
				sp.Files = append(sp.Files, FileDiff{Path: path, Diff: sensu.Diff(path, path, beforeOf(before, f, path), f.dataOrNil())})
			}
			if ready {
				sp.Refused = w.check(changed, func(path string) []byte { return beforeOf(before, w.files[path], path) })
			}
			dropInBefore := proxyListeners(n.StateDir, func(path string) []byte {
				if f, ok := w.files[path]; ok {
					return beforeOf(before, f, path)
				}
				return onDisk(path)
			})
			sp.Steps = n.stepsFor(changed, dropInBefore, w.dropIn())
			if p == next {
				sp.Blocked = o.plaintextGate(ctx, n, st, p, &Result{})
			}
		}
		plans = append(plans, sp)
	}
	return plans, st.Phase, nil
}

// dropIn is the bridge drop-in's content in the workspace.
func (w *workspace) dropIn() []byte {
	return proxyListeners(w.node.StateDir, func(path string) []byte {
		f, err := w.get(path)
		if err != nil {
			return nil
		}
		return f.dataOrNil()
	})
}

// proxyListeners is what the cutover's drop-ins (the bridge's and phase
// 4's agent binding) give the proxy, as one file read through read: the
// steps compare it before and after a phase to know what the proxy takes
// and lets go.
func proxyListeners(stateDir string, read func(path string) []byte) []byte {
	var all dropInFile
	for _, path := range []string{DropInPath(stateDir), EnforceDropInPath(stateDir)} {
		var f dropInFile
		if b := read(path); b != nil && yaml.Unmarshal(b, &f) == nil {
			all.Listeners = append(all.Listeners, f.Listeners...)
		}
	}
	if len(all.Listeners) == 0 {
		return nil
	}
	out, err := yaml.Marshal(all)
	if err != nil {
		return nil
	}
	return out
}

// onDisk reads path, nil when it cannot be read.
func onDisk(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// beforeOf is path's content in snapshot before, or on disk when the
// workspace first read it after the snapshot.
func beforeOf(before map[string][]byte, f *file, path string) []byte {
	if old, seen := before[path]; seen {
		return old
	}
	return diskOrNil(f)
}

func (f *file) dataOrNil() []byte {
	if !f.present {
		return nil
	}
	return f.data
}

func snapshot(w *workspace) map[string][]byte {
	m := map[string][]byte{}
	for p, f := range w.files {
		m[p] = f.dataOrNil()
	}
	return m
}

func (w *workspace) changedSince(before map[string][]byte) []string {
	var out []string
	for p, f := range w.files {
		old, seen := before[p]
		if !seen {
			old = f.disk
			if !f.onDisk {
				old = nil
			}
		}
		if string(old) != string(f.dataOrNil()) || (old == nil) != (f.dataOrNil() == nil) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Result says what an apply or rollback did.
type Result struct {
	From, To Phase
	Files    []FileDiff // what changed on disk
	Notes    []string
	// Log is each step as it was done (Options.Services), Todo the steps
	// left to the operator when apply only prints them.
	Log  []string
	Todo []Step
	// CutOff are the agents --force cut off.
	CutOff []Sighting
}

// Options are what apply and rollback do beyond the files.
type Options struct {
	// Services restarts and reloads what a phase changed, in the order
	// that keeps ports free, and runs each health gate; a failed gate
	// rolls the phase back. nil only lists the steps (Result.Todo), for
	// configuration management that restarts services itself.
	Services Services
	// Agents tells which agents the bridges saw, for the gate before a
	// step that ends plaintext.
	Agents AgentSightings
	// Window bounds how long ago a plaintext sighting still holds a step
	// back (0: any time since the bridges started counting).
	Window time.Duration
	// Member makes the backend's restarts this member's turn in its
	// cluster, and records the phase there; nil on a single backend.
	Member *Member
	// CutOff proceeds although agents still use plaintext (--force), and
	// names them.
	CutOff bool
	// Progress receives each line of Result.Log as it happens.
	Progress func(line string)
	Now      func() time.Time
}

// Apply brings the node to phase target: the next phase that applies to
// it, or the current one again (idempotent: nothing changes unless the
// files drifted). The certificates the phase needs must be on disk and
// valid, the result must lint no worse than before, and a step that ends
// plaintext must pass the agent gate; otherwise nothing is written. Then
// o.Services makes the processes take the files; when a step fails its
// gate, the files and the state go back to what they were and the
// processes are made to take them again.
func Apply(ctx context.Context, n *Node, target Phase, o Options) (*Result, error) {
	unlock, err := lock(n)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := LoadState(n)
	if err != nil {
		return nil, err
	}
	switch {
	case target < Bridge || target > Last:
		return nil, fmt.Errorf("phase %d does not exist: phases are 1 (bridge) to %d (%s)", target, Last, Last)
	case n.RefusePlaintext != nil && target != Bridge:
		return nil, fmt.Errorf("--refuse-plaintext is a choice of phase 1 (bridge), not of phase %d (%s): leave it out (the bridge keeps what it was applied with)", target, target)
	case n.BridgePorts != nil && target != Bridge:
		return nil, fmt.Errorf("the bridge ports are a choice of phase 1 (bridge), not of phase %d (%s): leave them out", target, target)
	}
	if ok, why := Applies(n, target); !ok {
		return nil, fmt.Errorf("phase %d (%s) does not apply to this node: %s; its phases are %s", target, target, why, PhaseList(Phases(n)))
	}
	switch next := nextPhase(n, st.Phase); {
	case target < st.Phase:
		return nil, fmt.Errorf("the node is at phase %d (%s): go back with migrate rollback, one phase at a time", st.Phase, st.Phase)
	case target > st.Phase && next == Plaintext:
		return nil, fmt.Errorf("the node is at phase %d (%s), the last that applies to it: the cutover is complete here", st.Phase, st.Phase)
	case target > st.Phase && target != next:
		return nil, fmt.Errorf("the node is at phase %d (%s): apply phase %d (%s) first", st.Phase, st.Phase, next, next)
	}
	s := steps[target]
	var errs []error
	for _, need := range s.needs(n) {
		if err := need.Check(); err != nil {
			errs = append(errs, fmt.Errorf("phase %d (%s) needs %s for %s: %w", target, target, need.What, need.Why, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	next := st.clone()
	w := newWorkspace(n, next)
	if err := s.apply(w); err != nil {
		return nil, fmt.Errorf("phase %d (%s): %w", target, target, err)
	}
	changed := w.changed()
	if err := w.check(changed, func(path string) []byte { return w.files[path].disk }); err != nil {
		return nil, err
	}
	res := &Result{From: st.Phase, To: target}
	if s.notes != nil {
		res.Notes = s.notes(n)
	}
	if err := o.plaintextGate(ctx, n, st, target, res); err != nil {
		return nil, err
	}
	dropIn := DropInPath(n.StateDir)
	if _, err := w.get(dropIn); err != nil {
		return nil, err
	}
	if err := saveBackups(n, next, target, w, changed); err != nil {
		return nil, err
	}
	if err := writeAll(w, changed); err != nil {
		return nil, err
	}
	for _, p := range changed {
		f := w.files[p]
		res.Files = append(res.Files, FileDiff{Path: p, Diff: sensu.Diff(p, p, diskOrNil(f), f.dataOrNil())})
		next.written(target)[p] = contentHash(f.dataOrNil(), f.present)
	}
	next.Phase = target
	if err := next.save(n); err != nil {
		return nil, err
	}
	dropInBefore := proxyListeners(n.StateDir, func(path string) []byte {
		if f, ok := w.files[path]; ok {
			return diskOrNil(f) // as read before this phase wrote it
		}
		return onDisk(path)
	})
	if err := o.run(ctx, n, n.stepsFor(changed, dropInBefore, w.dropIn()), res); err != nil {
		return res, undo(ctx, n, o, st, target, w, changed, dropInBefore, res, err)
	}
	o.recordPhase(ctx, n, res, target, "applied")
	return res, nil
}

// recordPhase stores the node's phase in its cluster when it is a member
// with a backend.
func (o Options) recordPhase(ctx context.Context, n *Node, res *Result, p Phase, details string) {
	if o.Member != nil && n.IsBackend() {
		o.Member.record(ctx, o, res, p, details)
	}
}

// undo puts back the files and the state an apply changed after one of
// its steps failed, and makes the processes take them again.
func undo(ctx context.Context, n *Node, o Options, st *State, target Phase, w *workspace, changed []string, dropInBefore []byte, res *Result, cause error) error {
	o.log(res, fmt.Sprintf("rolling phase %d (%s) back: %v", target, target, cause))
	var errs []error
	for _, p := range changed {
		if err := writeOne(p, diskOrNil(w.files[p])); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", p, err))
		}
	}
	if err := st.save(n); err != nil {
		errs = append(errs, err)
	}
	if st.Phase != target {
		if err := os.RemoveAll(backupDir(n, target)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("phase %d (%s) failed (%v) and could not be rolled back: %w", target, target, cause, err)
	}
	err := o.run(ctx, n, n.stepsFor(changed, w.dropIn(), dropInBefore), res)
	o.recordPhase(ctx, n, res, st.Phase, fmt.Sprintf("phase %d (%s) failed and was rolled back", target, target))
	if err != nil {
		return fmt.Errorf("phase %d (%s) failed (%v); its files are back at phase %d (%s), but %w", target, target, cause, st.Phase, st.Phase, err)
	}
	return fmt.Errorf("phase %d (%s) failed and was rolled back to phase %d (%s): %w", target, target, st.Phase, st.Phase, cause)
}

// PhaseList names phases for people: "1 (bridge), 3 (native)".
func PhaseList(ps []Phase) string {
	if len(ps) == 0 {
		return "none"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprintf("%d (%s)", p, p)
	}
	return strings.Join(s, ", ")
}

func diskOrNil(f *file) []byte {
	if !f.onDisk {
		return nil
	}
	return f.disk
}

// saveBackups keeps the bytes every file had before phase p first changed
// it; a re-apply only adds files the phase had not touched yet.
func saveBackups(n *Node, st *State, p Phase, w *workspace, changed []string) error {
	if st.Backups == nil {
		st.Backups = map[Phase]map[string]string{}
	}
	m := st.Backups[p]
	if m == nil {
		m = map[string]string{}
		st.Backups[p] = m
	}
	dir := backupDir(n, p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, path := range changed {
		if _, kept := m[path]; kept {
			continue
		}
		f := w.files[path]
		if !f.onDisk {
			m[path] = ""
			continue
		}
		name := strconv.Itoa(len(m)) + "-" + filepath.Base(path)
		if err := sensu.WriteNew(filepath.Join(dir, name), f.disk); err != nil {
			return fmt.Errorf("backing up %s: %w", path, err)
		}
		m[path] = name
	}
	return nil
}

// writeAll writes every changed file; when one fails, the ones already
// written get their previous bytes back, so a phase is never half applied.
func writeAll(w *workspace, changed []string) error {
	var done []string
	for _, p := range changed {
		if err := writeOne(p, w.files[p].dataOrNil()); err != nil {
			for _, q := range done {
				_ = writeOne(q, diskOrNil(w.files[q]))
			}
			return fmt.Errorf("writing %s: %w (the files written before it were restored)", p, err)
		}
		done = append(done, p)
	}
	return nil
}

func writeOne(path string, data []byte) error {
	if data == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return sensu.WriteNew(path, data)
}

// Rollback returns the node to the previous phase by restoring the exact
// bytes every file had before the current phase. A file edited since the
// phase wrote it is not overwritten unless force is set; then its edited
// content is kept beside it (FILE.sensu-tlsd.bak). A file the state has no
// record of the phase writing (a state.json from an older sensu-tlsd) is
// restored unchecked, and the notes say so. Phases that do not apply to
// the node are passed over. Then o.Services makes the processes take the
// restored files, the proxy letting go of a port before the backend
// wants it.
func Rollback(ctx context.Context, n *Node, force bool, o Options) (*Result, error) {
	unlock, err := lock(n)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := LoadState(n)
	if err != nil {
		return nil, err
	}
	if st.Phase == Plaintext {
		return nil, errors.New("the node is at phase 0 (plaintext): nothing to roll back")
	}
	res := &Result{From: st.Phase, To: prevPhase(n, st.Phase)}
	dir := backupDir(n, st.Phase)
	dropInBefore := proxyListeners(n.StateDir, onDisk)
	paths := make([]string, 0, len(st.Backups[st.Phase]))
	for p := range st.Backups[st.Phase] {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var drifted, unrecorded []string
	for _, p := range paths {
		written, recorded := st.Written[st.Phase][p]
		if !recorded {
			// state.json from before sensu-tlsd recorded what a phase
			// wrote: there is nothing to tell an edit by.
			unrecorded = append(unrecorded, p)
			continue
		}
		cur, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if contentHash(cur, err == nil) != written {
			drifted = append(drifted, p)
		}
	}
	if len(unrecorded) > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%s: restored without a check for edits made since phase %d (%s) wrote them: "+
			"this state.json is from a sensu-tlsd that did not record what a phase wrote", strings.Join(unrecorded, ", "), st.Phase, st.Phase))
	}
	if len(drifted) > 0 && !force {
		return nil, fmt.Errorf("%s changed after phase %d (%s) wrote it: a rollback restores the bytes from before the phase and would lose those edits; "+
			"carry them over by hand afterwards and run migrate rollback --force (the edited files are kept as FILE%s)",
			strings.Join(drifted, ", "), st.Phase, st.Phase, sensu.BackupSuffix)
	}
	for _, p := range paths {
		var data []byte
		if name := st.Backups[st.Phase][p]; name != "" {
			if data, err = os.ReadFile(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("backup of %s: %w", p, err)
			}
		}
		cur, curErr := os.ReadFile(p)
		if curErr == nil && slices.Contains(drifted, p) {
			if err := sensu.WriteNew(p+sensu.BackupSuffix, cur); err != nil {
				return nil, fmt.Errorf("keeping the edited %s: %w", p, err)
			}
			res.Notes = append(res.Notes, fmt.Sprintf("%s had been edited since phase %d: that content is in %s%s", p, st.Phase, p, sensu.BackupSuffix))
		}
		if err := writeOne(p, data); err != nil {
			return nil, fmt.Errorf("restoring %s: %w", p, err)
		}
		res.Files = append(res.Files, FileDiff{Path: p, Diff: sensu.Diff(p, p, cur, data)})
	}
	delete(st.Backups, st.Phase)
	delete(st.Written, st.Phase)
	if st.Phase == Bridge {
		st.Original, st.Public, st.RefusePlaintext, st.BridgePorts = nil, nil, false, nil
	}
	st.Phase = res.To
	if err := st.save(n); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	dropInAfter := proxyListeners(n.StateDir, onDisk)
	if err := o.run(ctx, n, n.stepsFor(paths, dropInBefore, dropInAfter), res); err != nil {
		return res, fmt.Errorf("the files are back at phase %d (%s), but %w", res.To, res.To, err)
	}
	o.recordPhase(ctx, n, res, res.To, fmt.Sprintf("rolled back from phase %d (%s)", res.From, res.From))
	return res, nil
}

// Status is where the node is and whether its files still match.
type Status struct {
	Phase   Phase
	Next    *StepPlan
	Drifted []string // files that no longer match the current phase
	DropIn  bool     // the bridge's listeners file exists
	Phases  []Phase  // the phases that apply to this node
}

// CurrentStatus reports the node's phase and drift.
func CurrentStatus(n *Node) (*Status, error) {
	st, err := LoadState(n)
	if err != nil {
		return nil, err
	}
	s := &Status{Phase: st.Phase}
	_, err = os.Stat(DropInPath(n.StateDir))
	s.DropIn = err == nil
	if st.Phase > Plaintext {
		w := newWorkspace(n, st.clone())
		if err := steps[st.Phase].apply(w); err != nil {
			return nil, err
		}
		s.Drifted = w.changed()
	}
	if p := nextPhase(n, st.Phase); p != Plaintext {
		next := steps[p]
		s.Next = &StepPlan{Phase: p, Summary: next.summary(n), Needs: next.needs(n)}
		if next.notes != nil {
			s.Next.Notes = next.notes(n)
		}
	}
	s.Phases = Phases(n)
	return s, nil
}

// LoadDropIns reads the proxy listeners that migrate (and any other
// generator) left in STATE-DIR/listeners.d/*.yml, for the daemon to serve
// beside the listeners of its own config.
func LoadDropIns(stateDir string) ([]config.Listener, error) {
	files, err := filepath.Glob(filepath.Join(stateDir, "listeners.d", "*.yml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []config.Listener
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d struct {
			Listeners []config.Listener `yaml:"listeners"`
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&d); err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		out = append(out, d.Listeners...)
	}
	return out, nil
}

// AddDropIns appends the listeners of the cutover's drop-ins to cfg and
// validates the result, so a drop-in that names a missing certificate is
// rejected like the same listener in the main file.
func AddDropIns(cfg *config.Config) error {
	extra, err := LoadDropIns(cfg.StateDir)
	if err != nil {
		return err
	}
	if len(extra) == 0 {
		return nil
	}
	cfg.Listeners = append(cfg.Listeners, extra...)
	return cfg.Validate()
}
