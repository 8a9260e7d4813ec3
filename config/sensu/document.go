package sensu

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"

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

// Parse reads a Sensu config. Sensu only understands a single flat mapping,
// so anything else is an error naming the file.
func Parse(name string, src []byte) (*Document, error) {
	d := &Document{Name: name, src: src}
	var n yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&n); err != nil {
		if err.Error() == "EOF" {
			return d, nil
		}
		return nil, fmt.Errorf("%s: not valid YAML: %v", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%s: line %d: a second YAML document; Sensu reads only one, remove the '---' and what follows", name, extra.Line)
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
		return nil, fmt.Errorf("%s: line %d: the file must be a mapping of keys (key: value), not a %s", name, root.Line, kindName(root.Kind))
	}
	d.root = root
	return d, nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

// Source returns the bytes the document was parsed from.
func (d *Document) Source() []byte { return d.src }

// Keys returns the top-level keys in file order.
func (d *Document) Keys() []string {
	if d.root == nil {
		return nil
	}
	keys := make([]string, 0, len(d.root.Content)/2)
	for i := 0; i+1 < len(d.root.Content); i += 2 {
		keys = append(keys, d.root.Content[i].Value)
	}
	return keys
}

// lookup finds the key and value nodes of a top-level key in the source.
func (d *Document) lookup(key string) (k, v *yaml.Node) {
	if d.root == nil {
		return nil, nil
	}
	for i := 0; i+1 < len(d.root.Content); i += 2 {
		if d.root.Content[i].Value == key {
			return d.root.Content[i], d.root.Content[i+1]
		}
	}
	return nil, nil
}

// Line returns the 1-based line of key in the source, 0 when absent.
func (d *Document) Line(key string) int {
	k, _ := d.lookup(key)
	if k == nil {
		return 0
	}
	return k.Line
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

// Bytes returns the edited file. With nothing changed it is the source,
// byte for byte. The result is verified by parsing it again: every edited
// key has its new value and every other key is untouched.
func (d *Document) Bytes() ([]byte, error) {
	if !d.Changed() {
		return d.src, nil
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
		return nil, fmt.Errorf("%s: refusing to write: the edited file would not read back as intended: %w", d.Name, err)
	}
	return out, nil
}

// expected is the decoded top-level mapping the result must have.
func (d *Document) expected() (map[string]any, error) {
	want := map[string]any{}
	if d.root != nil {
		if err := d.root.Decode(&want); err != nil {
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
