package sensu

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Node is what one Sensu process on this machine runs with: its YAML
// config and the environment files its unit loads, resolved the way Sensu
// resolves them. viper puts an environment variable over the file and the
// file over the default, and skips an empty variable; yaml.v2 keeps the
// last of a key set twice; a list in an environment variable is split on
// spaces. (Booleans, YAML 1.1 words in a plain scalar, are read by the
// linter, which reports the ones Sensu gets wrong.) systemd loads the environment
// files in order, so a later one wins.
type Node struct {
	Role Role
	// Files are the files read: the YAML config, then each environment
	// file that exists.
	Files  []string
	layers []source // lowest precedence first
	sum    [32]byte
}

// Files are one node's Sensu configs; "" or nil means not on this node.
type Files struct {
	Backend    string
	Agent      string
	BackendEnv []string
	AgentEnv   []string
}

// ReadError is a file of a node that cannot be read or does not parse.
type ReadError struct {
	File string
	Err  error
}

func (e *ReadError) Error() string {
	var pe *fs.PathError
	var se *SyntaxError
	if errors.As(e.Err, &pe) || errors.As(e.Err, &se) {
		return e.Err.Error() // names the file already
	}
	return e.File + ": " + e.Err.Error()
}

func (e *ReadError) Unwrap() error { return e.Err }

// ReadNode reads the role's YAML config (none when yamlPath is "") and
// its environment files. An environment file that does not exist is
// skipped, as the packaged units skip it (EnvironmentFile=-); any other
// file that cannot be read or parsed is a *ReadError.
func ReadNode(r Role, yamlPath string, envFiles []string) (*Node, error) {
	n := &Node{Role: r}
	h := sha256.New()
	add := func(path string, src []byte, s source) {
		n.Files = append(n.Files, path)
		n.layers = append(n.layers, s)
		h.Write([]byte(path + "\x00" + strconv.Itoa(len(src)) + "\x00"))
		h.Write(src)
	}
	if yamlPath != "" {
		src, err := os.ReadFile(yamlPath)
		if err != nil {
			return nil, &ReadError{File: yamlPath, Err: err}
		}
		d, err := Parse(yamlPath, src)
		if err != nil {
			return nil, &ReadError{File: yamlPath, Err: err}
		}
		add(yamlPath, src, d)
	}
	for _, p := range envFiles {
		src, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, &ReadError{File: p, Err: err}
		}
		e, err := ParseEnvFile(p, src, r)
		if err != nil {
			return nil, &ReadError{File: p, Err: err}
		}
		add(p, src, e)
	}
	copy(n.sum[:], h.Sum(nil))
	return n, nil
}

// NodeOf resolves settings already in memory (a *Document, then
// *EnvFiles, lowest precedence first), as ReadNode resolves files.
func NodeOf(r Role, settings ...Settings) *Node {
	n := &Node{Role: r}
	for _, s := range settings {
		src, ok := s.(source)
		if !ok {
			src = plainSettings{s}
		}
		n.layers = append(n.layers, src)
	}
	return n
}

// plainSettings is a Settings of another package, read as YAML would be.
type plainSettings struct{ Settings }

func (plainSettings) Line(string) int         { return 0 }
func (plainSettings) label(key string) string { return key }
func (plainSettings) plain(string) bool       { return false }

// Digest identifies the bytes of every file read, so a rewrite of any of
// them is noticed.
func (n *Node) Digest() [32]byte { return n.sum }

// layer is the layer that sets key as Sensu reads it, nil when none does.
func (n *Node) layer(key string) source {
	for i := len(n.layers) - 1; i >= 0; i-- {
		l := n.layers[i]
		v, ok := l.Get(key)
		if !ok {
			continue
		}
		if _, env := l.(*EnvFile); env && v.Scalar == "" && len(v.List) == 0 {
			continue // viper takes an empty variable as unset
		}
		return l
	}
	return nil
}

// Get returns the value the node's files give key, false when none sets it.
func (n *Node) Get(key string) (Value, bool) {
	if l := n.layer(key); l != nil {
		return l.Get(key)
	}
	return Value{}, false
}

// Str is key's value as a string as the process runs with it: what the
// files set, else the default, else "".
func (n *Node) Str(key string) string {
	if v, ok := n.Get(key); ok {
		return v.Scalar
	}
	return defaultStr(n.Role, key)
}

// Where names the place that sets key: a file, with the variable for an
// environment file ("/etc/default/sensu-backend SENSU_BACKEND_CERT_FILE");
// "default" when no file sets it.
func (n *Node) Where(key string) string {
	switch l := n.layer(key).(type) {
	case nil:
		return "default"
	case *EnvFile:
		return l.Name + " " + l.label(key)
	case *Document:
		return l.Name
	}
	return "settings"
}

// Keys are the role's settings some file of the node sets, sorted.
func (n *Node) Keys() []string {
	var out []string
	prefix := EnvName(n.Role, "")
	for _, l := range n.layers {
		var keys []string
		switch l := l.(type) {
		case *Document:
			keys = l.Keys()
		case *EnvFile:
			for _, v := range l.vars() {
				if rest, ok := strings.CutPrefix(v.name, prefix); ok && rest != "" {
					keys = append(keys, envKey(rest))
				}
			}
		}
		for _, k := range keys {
			if KnownKey(n.Role, k) && !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// KeysNaming are the settings whose value, as the process runs with it,
// is the file path (the same file by another name counts).
func (n *Node) KeysNaming(path string) []string {
	var out []string
	for _, k := range n.Keys() {
		if v, ok := n.Get(k); ok && !v.IsList && v.Scalar != "" && SameFile(v.Scalar, path) {
			out = append(out, k)
		}
	}
	return out
}

// Reads reports whether path is one of the node's own config files.
func (n *Node) Reads(path string) bool {
	return slices.ContainsFunc(n.Files, func(f string) bool { return SameFile(f, path) })
}

// BackendListeners are where a probe on this machine reaches the backend
// this node describes.
func (n *Node) BackendListeners() BackendListeners { return backendListeners(n.Str) }

// SameFile reports whether a and b name one file: the same clean path, or
// paths that resolve to the same existing file.
func SameFile(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}
