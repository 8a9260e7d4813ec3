package sensu

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// errNotPatchable means a value's source text has a shape the byte patcher
// does not rewrite in place (block scalars, multi-line plain scalars,
// anchors); Bytes then re-encodes instead.
var errNotPatchable = errors.New("value not patchable in place")

// span replaces src[start:end] with text.
type span struct {
	start, end int
	text       string
}

// patch applies the edits to the source bytes: changed values are replaced
// where they stand, deleted keys lose their lines, new keys are appended.
func (d *Document) patch() ([]byte, error) {
	if d.root != nil && d.root.Style&yaml.FlowStyle != 0 {
		return nil, errNotPatchable
	}
	var spans []span
	var appended []string
	final := d.final()
	done := map[string]bool{}
	for _, c := range d.changes {
		if done[c.key] {
			continue
		}
		done[c.key] = true
		f := final[c.key]
		k, v := d.lookup(c.key)
		switch {
		case f.delete && k == nil:
		case f.delete:
			s, err := d.deleteSpan(k, v)
			if err != nil {
				return nil, err
			}
			spans = append(spans, s)
		case k == nil:
			line, err := renderEntry(c.key, f.value)
			if err != nil {
				return nil, err
			}
			appended = append(appended, line)
		default:
			ss, err := d.valueSpans(k, v, f.value)
			if err != nil {
				return nil, err
			}
			spans = append(spans, ss...)
		}
	}
	// Windows agents' files end lines with CRLF; new lines follow suit.
	nl := "\n"
	if bytes.Contains(d.src, []byte("\r\n")) {
		nl = "\r\n"
		for i := range spans {
			spans[i].text = strings.ReplaceAll(spans[i].text, "\n", nl)
		}
		for i := range appended {
			appended[i] = strings.ReplaceAll(appended[i], "\n", nl)
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	var out bytes.Buffer
	pos := 0
	for _, s := range spans {
		if s.start < pos {
			return nil, errNotPatchable
		}
		out.Write(d.src[pos:s.start])
		out.WriteString(s.text)
		pos = s.end
	}
	out.Write(d.src[pos:])
	if len(appended) > 0 {
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteString(nl)
		}
		trimDocumentEnd(&out, nl)
		for _, l := range appended {
			out.WriteString(l + nl)
		}
	}
	return out.Bytes(), nil
}

// trimDocumentEnd drops a trailing "..." end marker: keys appended after it
// would land outside the document, and without it the file means the same.
func trimDocumentEnd(out *bytes.Buffer, nl string) {
	b, end := out.Bytes(), "..."+nl
	if bytes.HasSuffix(b, []byte(nl+end)) || string(b) == end {
		out.Truncate(len(b) - len(end))
	}
}

// offset converts a yaml.v3 line/column (1-based, counted in characters)
// into a byte offset in src.
func (d *Document) offset(line, col int) (int, error) {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(d.src[off:], '\n')
		if i < 0 {
			return 0, errNotPatchable
		}
		off += i + 1
	}
	for c := 1; c < col; c++ {
		if off >= len(d.src) || d.src[off] == '\n' {
			return 0, errNotPatchable
		}
		_, size := utf8.DecodeRune(d.src[off:])
		off += size
	}
	return off, nil
}

// tokenEnd returns the end offset of the scalar token starting at start.
// inFlow stops plain scalars at flow indicators.
func (d *Document) tokenEnd(start int, inFlow bool) (int, error) {
	src := d.src
	if start >= len(src) {
		return 0, errNotPatchable
	}
	switch src[start] {
	case '"':
		for i := start + 1; i < len(src); i++ {
			switch src[i] {
			case '\\':
				i++
			case '"':
				return i + 1, nil
			}
		}
		return 0, errNotPatchable
	case '\'':
		for i := start + 1; i < len(src); i++ {
			if src[i] == '\'' {
				if i+1 < len(src) && src[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, nil
			}
		}
		return 0, errNotPatchable
	case '|', '>', '&', '*', '!':
		return 0, errNotPatchable
	}
	end := start
	for end < len(src) && src[end] != '\n' {
		ch := src[end]
		if ch == '#' && end > start && (src[end-1] == ' ' || src[end-1] == '\t') {
			break
		}
		if inFlow && (ch == ',' || ch == ']' || ch == '}') {
			break
		}
		end++
	}
	for end > start && (src[end-1] == ' ' || src[end-1] == '\t' || src[end-1] == '\r') {
		end--
	}
	return end, nil
}

// scalarSpan locates the source text of scalar node n and checks that it
// really is the whole value (a multi-line plain scalar is not).
func (d *Document) scalarSpan(n *yaml.Node, inFlow bool) (int, int, error) {
	if n.Kind != yaml.ScalarNode || n.Anchor != "" || n.Style&(yaml.LiteralStyle|yaml.FoldedStyle|yaml.TaggedStyle) != 0 {
		return 0, 0, errNotPatchable
	}
	start, err := d.offset(n.Line, n.Column)
	if err != nil {
		return 0, 0, err
	}
	end, err := d.tokenEnd(start, inFlow)
	if err != nil {
		return 0, 0, err
	}
	var check yaml.Node
	if err := yaml.Unmarshal(d.src[start:end], &check); err != nil || len(check.Content) != 1 || check.Content[0].Value != n.Value {
		return 0, 0, errNotPatchable
	}
	return start, end, nil
}

// isEmptyNull is a key with nothing after the colon ("cert-file:").
func isEmptyNull(v *yaml.Node) bool {
	return v.Kind == yaml.ScalarNode && v.Tag == "!!null" && v.Value == ""
}

// valueSpans returns the replacements that turn v's text into want.
func (d *Document) valueSpans(k, v *yaml.Node, want Value) ([]span, error) {
	if isEmptyNull(v) {
		at, err := d.offset(v.Line, v.Column)
		if err != nil {
			return nil, err
		}
		text, err := renderValue(want, 0, d.indentOf(k))
		if err != nil {
			return nil, err
		}
		if want.IsList && len(want.List) > 0 {
			text = "\n" + text
		} else {
			text = " " + text
		}
		return []span{{at, at, text}}, nil
	}
	switch {
	case v.Kind == yaml.ScalarNode && !want.IsList:
		start, end, err := d.scalarSpan(v, false)
		if err != nil {
			return nil, err
		}
		text, err := renderScalar(want, v.Style)
		if err != nil {
			return nil, err
		}
		return []span{{start, end, text}}, nil
	case v.Kind == yaml.SequenceNode && want.IsList && len(v.Content) == len(want.List) && len(want.List) > 0:
		// Same length: replace entry by entry, so comments between
		// entries and the entries' quoting survive.
		var spans []span
		flow := v.Style&yaml.FlowStyle != 0
		for i, it := range v.Content {
			if it.Value == want.List[i] {
				continue
			}
			start, end, err := d.scalarSpan(it, flow)
			if err != nil {
				return nil, err
			}
			text, err := renderScalar(Str(want.List[i]), it.Style)
			if err != nil {
				return nil, err
			}
			spans = append(spans, span{start, end, text})
		}
		return spans, nil
	case v.Kind == yaml.SequenceNode && v.Style&yaml.FlowStyle != 0:
		start, err := d.offset(v.Line, v.Column)
		if err != nil {
			return nil, err
		}
		end, err := d.flowEnd(start)
		if err != nil {
			return nil, err
		}
		var style yaml.Style
		if len(v.Content) > 0 {
			style = v.Content[0].Style
		}
		text, err := renderFlow(want, style)
		if err != nil {
			return nil, err
		}
		return []span{{start, end, text}}, nil
	case v.Kind == yaml.SequenceNode && len(v.Content) > 0:
		// Block list of another length: rewrite from the first dash to the
		// end of the last entry, at the list's own indentation.
		start, err := d.offset(v.Line, v.Column)
		if err != nil {
			return nil, err
		}
		last := v.Content[len(v.Content)-1]
		_, end, err := d.scalarSpan(last, false)
		if err != nil {
			return nil, err
		}
		if !want.IsList {
			return nil, errNotPatchable
		}
		text, err := renderBlockItems(want.List, v.Column-1, v.Content[0].Style)
		if err != nil || text == "" {
			return nil, errNotPatchable
		}
		return []span{{start, end, text}}, nil
	case v.Kind == yaml.ScalarNode && want.IsList:
		start, end, err := d.scalarSpan(v, false)
		if err != nil {
			return nil, err
		}
		text, err := renderFlow(want, v.Style)
		if err != nil {
			return nil, err
		}
		return []span{{start, end, text}}, nil
	}
	return nil, errNotPatchable
}

// indentOf is the column (0-based) of the key node, for nested output.
func (d *Document) indentOf(k *yaml.Node) int { return k.Column - 1 }

// flowEnd finds the "]" closing the flow sequence opened at start.
func (d *Document) flowEnd(start int) (int, error) {
	depth := 0
	for i := start; i < len(d.src); i++ {
		switch d.src[i] {
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		case '"', '\'':
			end, err := d.tokenEnd(i, true)
			if err != nil {
				return 0, err
			}
			i = end - 1
		case '#':
			if i > 0 && (d.src[i-1] == ' ' || d.src[i-1] == '\t') {
				return 0, errNotPatchable
			}
		}
	}
	return 0, errNotPatchable
}

// deleteSpan removes whole lines from the key's line to the end of its
// value, when nothing else shares those lines.
func (d *Document) deleteSpan(k, v *yaml.Node) (span, error) {
	start, err := d.offset(k.Line, 1)
	if err != nil {
		return span{}, err
	}
	last := v
	if v.Kind == yaml.SequenceNode && len(v.Content) > 0 {
		last = v.Content[len(v.Content)-1]
	}
	var end int
	switch {
	case v.Kind == yaml.SequenceNode && v.Style&yaml.FlowStyle != 0:
		s, err := d.offset(v.Line, v.Column)
		if err != nil {
			return span{}, err
		}
		if end, err = d.flowEnd(s); err != nil {
			return span{}, err
		}
	case isEmptyNull(v):
		end, err = d.offset(v.Line, v.Column)
		if err != nil {
			return span{}, err
		}
	case last.Kind == yaml.ScalarNode:
		if _, end, err = d.scalarSpan(last, false); err != nil {
			return span{}, err
		}
	default:
		return span{}, errNotPatchable
	}
	if i := bytes.IndexByte(d.src[end:], '\n'); i >= 0 {
		end += i + 1
	} else {
		end = len(d.src)
	}
	if strings.TrimSpace(string(d.src[start:start+k.Column-1])) != "" {
		return span{}, errNotPatchable
	}
	return span{start, end, ""}, nil
}

// renderScalar writes one scalar in the given style (the style the old
// value had), letting the encoder quote when the style cannot hold it.
func renderScalar(v Value, style yaml.Style) (string, error) {
	tag := v.Tag
	if tag == "" {
		tag = "!!str"
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v.Scalar, Style: style & (yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle)}
	if tag == "!!bool" {
		n.Style = 0
	}
	out, err := yaml.Marshal(n)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(string(out), "\n")
	if strings.Contains(s, "\n") {
		n.Style = yaml.DoubleQuotedStyle
		if out, err = yaml.Marshal(n); err != nil {
			return "", err
		}
		s = strings.TrimSuffix(string(out), "\n")
		if strings.Contains(s, "\n") {
			return "", errNotPatchable
		}
	}
	return s, nil
}

// renderFlow writes a list as [a, b], quoted like the old entries.
func renderFlow(v Value, style yaml.Style) (string, error) {
	parts := make([]string, len(v.List))
	for i, it := range v.List {
		s, err := renderScalar(Str(it), style)
		if err != nil {
			return "", err
		}
		parts[i] = s
	}
	return "[" + strings.Join(parts, ", ") + "]", nil
}

// renderBlockItems writes "- a\n<indent>- b" (the first dash's indentation
// is already in the source).
func renderBlockItems(items []string, indent int, style yaml.Style) (string, error) {
	var b strings.Builder
	for i, it := range items {
		s, err := renderScalar(Str(it), style)
		if err != nil {
			return "", err
		}
		if i > 0 {
			b.WriteString("\n" + strings.Repeat(" ", indent))
		}
		b.WriteString("- " + s)
	}
	return b.String(), nil
}

// renderValue writes a value that starts after "key:"; lists become block
// lists indented two spaces past the key.
func renderValue(v Value, style yaml.Style, keyIndent int) (string, error) {
	if !v.IsList {
		return renderScalar(v, style)
	}
	if len(v.List) == 0 {
		return "[]", nil
	}
	indent := keyIndent + 2
	s, err := renderBlockItems(v.List, indent, style)
	if err != nil {
		return "", err
	}
	return strings.Repeat(" ", indent) + s, nil
}

// renderEntry writes a new top-level "key: value" (lists as a block list,
// the layout the packaged files use).
func renderEntry(key string, v Value) (string, error) {
	text, err := renderValue(v, 0, 0)
	if err != nil {
		return "", err
	}
	if v.IsList && len(v.List) > 0 {
		return key + ":\n" + text, nil
	}
	return key + ": " + text, nil
}

// reencode applies the edits to the node tree and encodes it again. It is
// the fallback for shapes the patcher does not handle; yaml.v3 keeps the
// comments but may change indentation and quoting.
func (d *Document) reencode() ([]byte, error) {
	var doc yaml.Node
	if len(d.src) > 0 {
		if err := yaml.Unmarshal(d.src, &doc); err != nil {
			return nil, err
		}
	}
	var root *yaml.Node
	if len(doc.Content) > 0 && doc.Content[0].Kind == yaml.MappingNode {
		root = doc.Content[0]
		root.Style &^= yaml.FlowStyle
		for i := 0; i < len(root.Content); i += 2 {
			// An empty null key ("? " alone) would be encoded as '', a
			// real key; ~ stays the null key yaml.v3 decodes it as.
			if k := root.Content[i]; k.Kind == yaml.ScalarNode && k.Tag == "!!null" && k.Value == "" {
				k.Value = "~"
			}
		}
	} else {
		root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		var head string
		if len(doc.Content) > 0 {
			head = doc.Content[0].HeadComment
		}
		root.HeadComment = head
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}
	}
	final := d.final()
	seen := map[string]bool{}
	for _, ch := range d.changes {
		key, c := ch.key, final[ch.key]
		if seen[key] {
			continue
		}
		seen[key] = true
		idx := -1
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == key {
				idx = i
				break
			}
		}
		if c.delete {
			if idx >= 0 {
				root.Content = append(root.Content[:idx], root.Content[idx+2:]...)
			}
			continue
		}
		vn := valueNode(c.value)
		if idx >= 0 {
			old := root.Content[idx+1]
			vn.LineComment, vn.HeadComment, vn.FootComment = old.LineComment, old.HeadComment, old.FootComment
			root.Content[idx+1] = vn
			continue
		}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, vn)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("re-encoding: %v", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func valueNode(v Value) *yaml.Node {
	if v.IsList {
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, it := range v.List {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: it})
		}
		return n
	}
	tag := v.Tag
	if tag == "" {
		tag = "!!str"
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v.Scalar}
}
