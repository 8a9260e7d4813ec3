package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sensu-tlsd/sensu-tlsd/config/sensu"
	"github.com/sensu-tlsd/sensu-tlsd/internal/flock"
)

// State is what the node remembers between phases, in
// STATE-DIR/migrate/state.json.
type State struct {
	Phase Phase `json:"phase"`
	// Public holds the backend's listener settings as they were before the
	// bridge (effective values), which the proxy listeners take over.
	Public map[string]string `json:"public,omitempty"`
	// Original holds, per file, the bridge keys' values before the bridge
	// (null: the key was absent), so phase 3 puts them back exactly.
	Original map[string]map[string]*sensu.Value `json:"original,omitempty"`
	// Backups maps a phase to the files it changed and where their previous
	// bytes are kept ("" when the file did not exist before).
	Backups map[Phase]map[string]string `json:"backups,omitempty"`
	// Written maps a phase to the SHA-256 of what it left in each file it
	// changed ("" for a file it removed), so a rollback sees later edits.
	Written map[Phase]map[string]string `json:"written,omitempty"`
	// RefusePlaintext is how the bridge was applied (--refuse-plaintext):
	// its listeners take TLS only. A re-apply, plan and status keep it.
	RefusePlaintext bool `json:"refuse-plaintext,omitempty"`
	// BridgePorts are the loopback ports the bridge moved the backend to
	// (nil in a state.json from before they were configurable: the ports
	// then follow the public ones + 10000, as that sensu-tlsd wrote them).
	BridgePorts *BridgePorts `json:"bridge-ports,omitempty"`
}

func statePath(n *Node) string { return filepath.Join(n.dir(), "state.json") }

// LoadState reads the node's state; a node never migrated is at Plaintext.
func LoadState(n *Node) (*State, error) {
	st := &State{}
	b, err := os.ReadFile(statePath(n))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return st, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %v: restore it from a backup or remove it only if no phase was applied", statePath(n), err)
	}
	if st.Phase < Plaintext || st.Phase > Last {
		return nil, fmt.Errorf("%s: phase %d is out of range", statePath(n), st.Phase)
	}
	return st, nil
}

func (st *State) save(n *Node) error {
	if err := os.MkdirAll(n.dir(), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return sensu.WriteNew(statePath(n), append(b, '\n'))
}

// clone deep-copies st so a simulation cannot change the real state.
func (st *State) clone() *State {
	b, _ := json.Marshal(st)
	c := &State{}
	_ = json.Unmarshal(b, c)
	return c
}

// written is phase p's map of file -> content hash, created on first use.
func (st *State) written(p Phase) map[string]string {
	if st.Written == nil {
		st.Written = map[Phase]map[string]string{}
	}
	if st.Written[p] == nil {
		st.Written[p] = map[string]string{}
	}
	return st.Written[p]
}

// contentHash identifies a file's content: the hex SHA-256, or "" for an
// absent file.
func contentHash(data []byte, present bool) string {
	if !present {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// bridgePorts are the loopback ports for the bridge: n's choice, else
// the recorded one, else (a bridge applied by a sensu-tlsd that did not
// record them) the public ports + 10000 it used, else the defaults.
func (st *State) bridgePorts(n *Node) BridgePorts {
	switch {
	case n.BridgePorts != nil:
		return *n.BridgePorts
	case st.BridgePorts != nil:
		return *st.BridgePorts
	case st.Phase >= Bridge && len(st.Public) > 0:
		plus := func(port string) int {
			p, _ := strconv.Atoi(port)
			return p + 10000
		}
		_, api, _ := net.SplitHostPort(st.Public[apiListen.key])
		return BridgePorts{API: plus(api), Agent: plus(st.Public[agentPort.key]), Dashboard: plus(st.Public[dashPort.key])}
	}
	return DefaultBridgePorts
}

func (st *State) publicValue(key string) (string, bool) {
	v, ok := st.Public[key]
	return v, ok
}

func (st *State) rememberPublic(public map[string]string) {
	if len(st.Public) > 0 {
		return
	}
	st.Public = public
}

// rememberOriginal records key's value in path once, before the bridge
// first changes it.
func (st *State) rememberOriginal(path, key string, s sensu.Settings) {
	if st.Original == nil {
		st.Original = map[string]map[string]*sensu.Value{}
	}
	m := st.Original[path]
	if m == nil {
		m = map[string]*sensu.Value{}
		st.Original[path] = m
	}
	if _, done := m[key]; done {
		return
	}
	if v, ok := s.Get(key); ok {
		m[key] = &v
	} else {
		m[key] = nil
	}
}

// deleter is a Settings that can remove a key (YAML documents can; an
// environment file never had the keys the bridge added).
type deleter interface{ Delete(key string) }

// restoreOriginals puts back what the bridge changed in path.
func (st *State) restoreOriginals(path string, s sensu.Settings) {
	for key, v := range st.Original[path] {
		if v != nil {
			s.Set(key, *v)
		} else if d, ok := s.(deleter); ok {
			d.Delete(key)
		}
	}
}

// lock takes the node's migration lock so two migrate commands cannot
// interleave their writes; release it with the returned func.
func lock(n *Node) (func(), error) {
	if err := os.MkdirAll(n.dir(), 0o700); err != nil {
		return nil, err
	}
	l, err := flock.Open(filepath.Join(n.dir(), ".lock"), 0o600)
	if err != nil {
		return nil, err
	}
	if err := l.TryLock(); err != nil {
		l.Close()
		if errors.Is(err, flock.ErrLocked) {
			return nil, fmt.Errorf("another sensu-tlsd migrate is running on this node (%s is locked): wait for it", l.Name())
		}
		return nil, err
	}
	return func() { l.Close() }, nil
}

func backupDir(n *Node, p Phase) string {
	return filepath.Join(n.dir(), "phase-"+strconv.Itoa(int(p)))
}
