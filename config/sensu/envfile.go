package sensu

import (
	"fmt"
	"path/filepath"
	"strings"
)

// EnvFile is a packages' environment file (/etc/default/sensu-backend,
// /etc/sysconfig/sensu-agent): KEY=value lines read by systemd's
// EnvironmentFile. Its settings override the YAML file, so sensu-tlsd edits
// the keys it owns there too, but only those the file already sets.
type EnvFile struct {
	Name  string
	Role  Role
	lines []envLine
}

type envLine struct {
	text        string // the whole line, without its newline
	key         string // "" for comments and blank lines
	valueStart  int    // byte offsets of the value (quotes excluded) in text
	valueEnd    int
	quote       byte // '"', '\'' or 0
	value       string
	hasNewline  bool
	replacement *string
}

// ParseEnvFile reads an environment file for role r. Lines that are not
// KEY=value are kept as they are.
func ParseEnvFile(name string, src []byte, r Role) (*EnvFile, error) {
	e := &EnvFile{Name: name, Role: r}
	rest := string(src)
	for n := 1; rest != ""; n++ {
		text, after, nl := strings.Cut(rest, "\n")
		rest = after
		l := envLine{text: text, hasNewline: nl}
		trimmed := strings.TrimSpace(text)
		if trimmed != "" && !strings.HasPrefix(trimmed, "#") {
			body := strings.TrimPrefix(trimmed, "export ")
			key, val, ok := strings.Cut(body, "=")
			if ok && isEnvName(key) {
				start := strings.Index(text, key+"=") + len(key) + 1
				l.key = key
				l.valueStart, l.valueEnd = start, len(strings.TrimRight(text, " \t\r"))
				val = strings.TrimRight(val, " \t\r")
				if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
					l.quote = val[0]
					l.valueStart++
					l.valueEnd--
					val = val[1 : len(val)-1]
					if l.quote == '"' {
						val = unescapeDouble(val)
					}
				} else if len(val) > 0 && (val[0] == '"' || val[0] == '\'') {
					return nil, fmt.Errorf("%s: line %d: %s has an unterminated quote; close it", name, n, key)
				}
				l.value = val
			}
		}
		e.lines = append(e.lines, l)
	}
	return e, nil
}

// unescapeDouble undoes the backslash escapes systemd and the shell honour
// inside double quotes.
func unescapeDouble(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (e *EnvFile) find(key string) *envLine {
	name := EnvName(e.Role, key)
	var found *envLine
	for i := range e.lines {
		if e.lines[i].key == name {
			found = &e.lines[i] // the last assignment wins, as in the shell
		}
	}
	return found
}

// Line returns the 1-based line of the assignment Sensu uses for key, 0
// when the file does not set it.
func (e *EnvFile) Line(key string) int {
	name := EnvName(e.Role, key)
	line := 0
	for i := range e.lines {
		if e.lines[i].key == name {
			line = i + 1
		}
	}
	return line
}

func (e *EnvFile) label(key string) string { return EnvName(e.Role, key) }

// plain is false: an environment value is a string to Sensu, read with
// strconv.ParseBool, never by YAML rules.
func (e *EnvFile) plain(string) bool { return false }

// envVar is one assignment of the file.
type envVar struct {
	name string
	line int
}

// vars lists the file's assignments in order.
func (e *EnvFile) vars() []envVar {
	var out []envVar
	for i, l := range e.lines {
		if l.key != "" {
			out = append(out, envVar{l.key, i + 1})
		}
	}
	return out
}

// isEnvFile tells an environment file (/etc/default/sensu-agent) from a
// YAML config: no .yml or .yaml name, and every line that is not blank or
// a comment assigns a variable.
func isEnvFile(path string, src []byte) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yml", ".yaml", ".json":
		return false
	}
	assigns := 0
	for _, line := range strings.Split(string(src), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		key, _, ok := strings.Cut(strings.TrimPrefix(t, "export "), "=")
		if !ok || !isEnvName(key) {
			return false
		}
		assigns++
	}
	return assigns > 0
}

// detectEnvRole tells a backend environment file from an agent one by its
// name, then by its variables (SENSU_BACKEND_<backend key> or SENSU_<agent
// key>; SENSU_BACKEND_URL is the agent's backend-url).
func detectEnvRole(path string, src []byte) (Role, error) {
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.Contains(base, "backend"):
		return Backend, nil
	case strings.Contains(base, "agent"):
		return Agent, nil
	}
	score := 0
	for _, line := range strings.Split(string(src), "\n") {
		key, _, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "export "), "=")
		if !ok {
			continue
		}
		if rest, ok := strings.CutPrefix(key, "SENSU_BACKEND_"); ok && rest != "URL" && KnownKey(Backend, envKey(rest)) {
			score++
		} else if rest, ok := strings.CutPrefix(key, "SENSU_"); ok && KnownKey(Agent, envKey(rest)) {
			score--
		}
	}
	switch {
	case score > 0:
		return Backend, nil
	case score < 0:
		return Agent, nil
	}
	return "", fmt.Errorf("%s: cannot tell whether this environment file is for sensu-backend or sensu-agent (no SENSU_BACKEND_* or SENSU_* setting, and the name says neither): pass --role backend or --role agent", path)
}

func envKey(suffix string) string { return strings.ToLower(strings.ReplaceAll(suffix, "_", "-")) }

// Get returns the value the file sets for a Sensu key; list keys are
// split on whitespace, as Sensu splits them.
func (e *EnvFile) Get(key string) (Value, bool) {
	l := e.find(key)
	if l == nil {
		return Value{}, false
	}
	v := l.value
	if l.replacement != nil {
		v = *l.replacement
	}
	if IsList(key) {
		return List(strings.Fields(v)...), true
	}
	return Str(v), true
}

// Set changes a key the file already sets; a key it does not set stays
// unset (the YAML file carries it).
func (e *EnvFile) Set(key string, v Value) {
	l := e.find(key)
	if l == nil {
		return
	}
	if cur, _ := e.Get(key); cur.equal(v) || (v.IsList && slicesEqual(cur.Items(), v.List)) {
		return
	}
	s := strings.Join(v.Items(), " ")
	l.replacement = &s
}

// Bytes returns the edited file; unchanged lines are kept byte for byte.
func (e *EnvFile) Bytes() []byte {
	var b strings.Builder
	for _, l := range e.lines {
		text := l.text
		if l.replacement != nil {
			val := *l.replacement
			quote := l.quote
			if quote == 0 && strings.ContainsAny(val, " \t\"'$`\\#") || quote == '\'' && strings.Contains(val, "'") {
				quote = '"'
			}
			if quote == '"' {
				val = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(val)
			}
			q := ""
			if quote != 0 {
				q = string(quote)
			}
			start, end := l.valueStart, l.valueEnd
			if l.quote != 0 {
				start, end = start-1, end+1
			}
			text = text[:start] + q + val + q + text[end:]
		}
		b.WriteString(text)
		if l.hasNewline {
			b.WriteByte('\n')
		}
	}
	return []byte(b.String())
}

// Changed reports whether any value was replaced.
func (e *EnvFile) Changed() bool {
	for _, l := range e.lines {
		if l.replacement != nil && *l.replacement != l.value {
			return true
		}
	}
	return false
}
