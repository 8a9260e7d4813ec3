package sensu

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Value is what a top-level key holds: a scalar or a list of scalars.
type Value struct {
	Scalar string
	List   []string
	IsList bool
	// Tag is the YAML tag written for a new scalar: "!!str" (default) or
	// "!!bool"; it decides quoting, so `false` stays a boolean.
	Tag string
}

// Str is a string scalar.
func Str(s string) Value { return Value{Scalar: s} }

// Bool is a boolean scalar.
func Bool(b bool) Value { return Value{Scalar: strconv.FormatBool(b), Tag: "!!bool"} }

// List is a YAML sequence of strings.
func List(items ...string) Value { return Value{List: items, IsList: true} }

// Items returns the list entries, or the scalar as a one-entry list.
func (v Value) Items() []string {
	if v.IsList {
		return v.List
	}
	if v.Scalar == "" {
		return nil
	}
	return []string{v.Scalar}
}

// equal compares semantically: "true" and true are the same setting to
// viper, so neither is rewritten into the other.
func (v Value) equal(w Value) bool {
	if v.IsList != w.IsList {
		return false
	}
	if v.IsList {
		return slicesEqual(v.List, w.List)
	}
	if v.Tag == "!!bool" || w.Tag == "!!bool" {
		a, errA := strconv.ParseBool(v.Scalar)
		b, errB := strconv.ParseBool(w.Scalar)
		if errA == nil && errB == nil {
			return a == b
		}
	}
	return v.Scalar == w.Scalar
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Document is one parsed Sensu YAML file plus the edits pending on it.
type Document struct {
	Name string // path or label used in messages
	src  []byte
	doc  *yaml.Node // document node; nil for an empty file
	root *yaml.Node // top-level mapping; nil for an empty file

	changes []change // in the order they were asked for
}

type change struct {
	key    string
	value  Value
	delete bool
}

// SyntaxError is a Sensu config or environment file that does not parse:
// where, what is wrong and the fix.
type SyntaxError struct {
	File string
	Line int // 1-based; 0 when unknown
	What string
	Fix  string
}

func (e *SyntaxError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ": line " + strconv.Itoa(e.Line)
	}
	return loc + ": " + e.What + "; " + e.Fix
}

// yamlLine is the line go-yaml puts at the start of its syntax errors
// ("yaml: line 3: did not find expected key").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// Parse reads a Sensu config. Sensu only understands a single flat mapping,
// so anything else is a *SyntaxError naming the file.
func Parse(name string, src []byte) (*Document, error) {
	d := &Document{Name: name, src: src}
	var n yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&n); err != nil {
		if err.Error() == "EOF" {
			return d, nil
		}
		se := &SyntaxError{File: name, What: "not valid YAML: " + err.Error(),
			Fix: "fix the YAML: sensu-backend and sensu-agent refuse to start with a broken file named by -c"}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			se.Line, _ = strconv.Atoi(m[1])
			se.What = "not valid YAML: " + strings.TrimPrefix(err.Error(), m[0])
		}
		return nil, se
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &SyntaxError{File: name, Line: extra.Line, What: "a second YAML document; Sensu reads only one", Fix: "remove the '---' and what follows"}
	}
	d.doc = &n
	if len(n.Content) == 0 {
		return d, nil
	}
	root := n.Content[0]
	switch {
	case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
		return d, nil
	case root.Kind != yaml.MappingNode:
		return nil, &SyntaxError{File: name, Line: root.Line, What: "the file must be a mapping of keys (key: value), not " + kindName(root.Kind),
			Fix: "write each setting as key: value at the top level"}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Kind != yaml.ScalarNode {
			return nil, &SyntaxError{File: name, Line: k.Line, What: "a setting's name must be a plain word, not " + kindName(k.Kind),
				Fix: "write the setting as name: value"}
		}
	}
	d.root = root
	return d, nil
}

// kindName names a node kind with its article, for "not a list".
func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	case yaml.AliasNode:
		return "an alias"
	case yaml.MappingNode:
		return "a mapping"
	}
	return "a document"
}

// Keys returns the top-level keys in file order, each once.
func (d *Document) Keys() []string {
	if d.root == nil {
		return nil
	}
	keys := make([]string, 0, len(d.root.Content)/2)
	seen := map[string]bool{}
	for i := 0; i+1 < len(d.root.Content); i += 2 {
		if k := d.root.Content[i].Value; !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// lookup finds the key and value nodes of a top-level key in the source.
// A key set twice reads as its last occurrence, as Sensu's yaml.v2 reads it.
func (d *Document) lookup(key string) (k, v *yaml.Node) {
	if d.root == nil {
		return nil, nil
	}
	for i := len(d.root.Content) - 2; i >= 0; i -= 2 {
		if d.root.Content[i].Value == key {
			return d.root.Content[i], d.root.Content[i+1]
		}
	}
	return nil, nil
}

// duplicate is a key a mapping sets more than once.
type duplicate struct {
	key   string // dotted path: cert-file, labels.region
	lines []int  // every line that sets it; Sensu uses the last
}

// duplicateKeys lists the keys set more than once, in any mapping of the
// file. yaml.v2 (Sensu) silently keeps the last one; yaml.v3 (which
// sensu-tlsd verifies its edits with) refuses the file.
func (d *Document) duplicateKeys() []duplicate {
	var out []duplicate
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.MappingNode:
			lines := map[string][]int{}
			var order []string
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Kind != yaml.ScalarNode {
					continue // a list or mapping as a key names no Sensu setting
				}
				k := n.Content[i].Value
				if k == "" {
					k = `""` // so the finding names the key the file spells as empty
				}
				if lines[k] == nil {
					order = append(order, k)
				}
				lines[k] = append(lines[k], n.Content[i].Line)
				walk(n.Content[i+1], prefix+k+".")
			}
			for _, k := range order {
				if len(lines[k]) > 1 {
					out = append(out, duplicate{key: prefix + k, lines: lines[k]})
				}
			}
		case yaml.SequenceNode, yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, prefix)
			}
		}
	}
	if d.root != nil {
		walk(d.root, "")
	}
	return out
}

// Line returns the 1-based line of key in the source, 0 when absent.
func (d *Document) Line(key string) int {
	k, _ := d.lookup(key)
	if k == nil {
		return 0
	}
	return k.Line
}

func (d *Document) label(key string) string { return key }

// plain reports whether key's value is an unquoted, untagged scalar, which
// Sensu's yaml.v2 resolves by YAML 1.1 rules (yes, on and y are true).
func (d *Document) plain(key string) bool {
	for i := len(d.changes) - 1; i >= 0; i-- {
		if c := d.changes[i]; c.key == key {
			return c.value.Tag == "!!bool"
		}
	}
	_, v := d.lookup(key)
	if v != nil && v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	return v != nil && v.Kind == yaml.ScalarNode && v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle|yaml.TaggedStyle) == 0
}

// Get returns the current value of key, with pending edits applied.
func (d *Document) Get(key string) (Value, bool) {
	for i := len(d.changes) - 1; i >= 0; i-- {
		if c := d.changes[i]; c.key == key {
			return c.value, !c.delete
		}
	}
	return d.original(key)
}

// original returns the value of key as the source has it. Nested mappings
// are not Sensu settings and read as absent.
func (d *Document) original(key string) (Value, bool) {
	_, v := d.lookup(key)
	if v == nil {
		return Value{}, false
	}
	return nodeValue(v)
}

func nodeValue(v *yaml.Node) (Value, bool) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return Value{}, true
		}
		return Value{Scalar: v.Value, Tag: v.Tag}, true
	case yaml.SequenceNode:
		items := make([]string, 0, len(v.Content))
		for _, it := range v.Content {
			if it.Kind == yaml.AliasNode && it.Alias != nil {
				it = it.Alias
			}
			if it.Kind != yaml.ScalarNode {
				return Value{}, false
			}
			items = append(items, it.Value)
		}
		return Value{List: items, IsList: true}, true
	}
	return Value{}, false
}

// Set records that key must hold v. Setting the value a key already has is
// not a change.
func (d *Document) Set(key string, v Value) {
	if cur, ok := d.Get(key); ok && cur.equal(v) {
		return
	}
	d.changes = append(d.changes, change{key: key, value: v})
}

// Delete records that key must be absent.
func (d *Document) Delete(key string) {
	if _, ok := d.Get(key); !ok {
		return
	}
	d.changes = append(d.changes, change{key: key, delete: true})
}

// Changed reports whether the edits change any key compared with the source.
func (d *Document) Changed() bool {
	for key, c := range d.final() {
		orig, had := d.original(key)
		if c.delete != !had || (!c.delete && !orig.equal(c.value)) {
			return true
		}
	}
	return false
}

// final collapses the edit log to the last edit per key.
func (d *Document) final() map[string]change {
	m := make(map[string]change, len(d.changes))
	for _, c := range d.changes {
		m[c.key] = c
	}
	return m
}

// Refusals: shapes of a file that Bytes will not edit, each reported with
// the file, the line, the key and the fix.
var (
	ErrDuplicateKey = errors.New("a key is set twice")
	ErrSharedAnchor = errors.New("a changed value is shared through an anchor")
)

// Bytes returns the edited file. With nothing changed it is the source,
// byte for byte. The result is verified by parsing it again: every edited
// key has its new value and every other key is untouched.
func (d *Document) Bytes() ([]byte, error) {
	if !d.Changed() {
		return d.src, nil
	}
	if err := d.refusal(); err != nil {
		return nil, err
	}
	want, err := d.expected()
	if err != nil {
		return nil, err
	}
	out, perr := d.patch()
	if perr == nil {
		if verr := verify(out, want); verr == nil {
			return out, nil
		}
	}
	out, err = d.reencode()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	if err := verify(out, want); err != nil {
		return nil, fmt.Errorf("%s: refusing to write: the edited file would not read back as intended (%w); nothing was changed: make the edit by hand (%s)", d.Name, err, d.pending())
	}
	return out, nil
}

// pending describes the edits as key: value, for a refusal's fix.
func (d *Document) pending() string {
	final := d.final()
	var parts []string
	for _, k := range d.changedKeys() {
		if c := final[k]; c.delete {
			parts = append(parts, "remove "+k)
		} else {
			parts = append(parts, k+": "+strings.Join(c.value.Items(), " "))
		}
	}
	return strings.Join(parts, "; ")
}

// changedKeys are the edited keys in the order they were first asked for.
func (d *Document) changedKeys() []string {
	var keys []string
	seen := map[string]bool{}
	for _, c := range d.changes {
		if !seen[c.key] {
			seen[c.key] = true
			keys = append(keys, c.key)
		}
	}
	return keys
}

// refusal reports the shapes no edit can be verified on: a key set twice
// (the verifying parser refuses the file) and a changed value that another
// key reads through an alias (the edit would change or break that key).
func (d *Document) refusal() error {
	for _, dup := range d.duplicateKeys() {
		last := dup.lines[len(dup.lines)-1]
		others := make([]string, len(dup.lines)-1)
		for i, l := range dup.lines[:len(dup.lines)-1] {
			others[i] = strconv.Itoa(l)
		}
		return fmt.Errorf("%s: line %d: %s is set %d times (lines %s and %d); Sensu uses line %d, sensu-tlsd will not edit the file until it is set once: delete line %s: %w",
			d.Name, dup.lines[0], dup.key, len(dup.lines), strings.Join(others, ", "), last, last, strings.Join(others, ", "), ErrDuplicateKey)
	}
	anchors := map[*yaml.Node][]*yaml.Node{} // anchored node -> aliases of it
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			anchors[n.Alias] = append(anchors[n.Alias], n)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	if d.doc == nil || d.root == nil {
		return nil
	}
	walk(d.doc)
	for _, key := range d.changedKeys() {
		k, v := d.lookup(key)
		if v == nil {
			continue
		}
		within := map[*yaml.Node]bool{}
		var mark func(n *yaml.Node)
		mark = func(n *yaml.Node) {
			within[n] = true
			for _, c := range n.Content {
				mark(c)
			}
		}
		mark(v)
		for n := range within {
			if n.Anchor == "" {
				continue
			}
			for _, a := range anchors[n] {
				if within[a] {
					continue // replaced together with its anchor
				}
				return fmt.Errorf("%s: line %d: %s holds the anchor &%s, which line %d reads as *%s; changing %s would change that line too: write the value out in place of *%s, then retry: %w",
					d.Name, k.Line, key, n.Anchor, a.Line, n.Anchor, key, n.Anchor, ErrSharedAnchor)
			}
		}
	}
	return nil
}

// expected is the decoded top-level mapping the result must have.
func (d *Document) expected() (map[string]any, error) {
	want := map[string]any{}
	if d.root != nil {
		// Decoded like verify decodes the result, so both sides agree on
		// the shapes yaml.v3 maps oddly (a null key reads as "").
		if err := yaml.Unmarshal(d.src, &want); err != nil {
			return nil, fmt.Errorf("%s: %v", d.Name, err)
		}
	}
	for key, c := range d.final() {
		if c.delete {
			delete(want, key)
			continue
		}
		want[key] = valueAny(c.value)
	}
	return want, nil
}

// valueAny is how yaml.v3 decodes v into an interface{}.
func valueAny(v Value) any {
	if v.IsList {
		l := make([]any, len(v.List))
		for i, s := range v.List {
			l[i] = s
		}
		return l
	}
	if v.Tag == "!!bool" {
		if b, err := strconv.ParseBool(v.Scalar); err == nil {
			return b
		}
	}
	return v.Scalar
}

func verify(out []byte, want map[string]any) error {
	got := map[string]any{}
	if err := yaml.Unmarshal(out, &got); err != nil {
		return fmt.Errorf("not valid YAML: %v", err)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			return fmt.Errorf("key %q lost", k)
		}
		if !reflect.DeepEqual(normalize(g), normalize(w)) {
			return fmt.Errorf("key %q reads %v, want %v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			return fmt.Errorf("unexpected key %q", k)
		}
	}
	return nil
}

// normalize makes a written string compare equal to the bool or number
// yaml.v3 decodes it as (a "true" we wrote quoted is still "true").
func normalize(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = normalize(x[i])
		}
		return out
	case nil:
		return ""
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}
