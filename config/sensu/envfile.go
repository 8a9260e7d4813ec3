package sensu

import (
	"path/filepath"
	"slices"
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
	line        int    // 1-based
	key         string // "" for comments and blank lines
	valueStart  int    // byte offsets of the value (quotes excluded) in text
	valueEnd    int
	quote       byte // '"', '\'' or 0
	value       string
	hasNewline  bool
	replacement *string
}

// ParseEnvFile reads an environment file for role r. Lines that are not
// KEY=value are kept as they are; a syntax error is a *SyntaxError.
func ParseEnvFile(name string, src []byte, r Role) (*EnvFile, error) {
	lines, _, err := scanEnv(name, src)
	if err != nil {
		return nil, err
	}
	return &EnvFile{Name: name, Role: r, lines: lines}, nil
}

// scanEnv applies the KEY=value grammar to src, once for everything
// derived from it: the lines, whether every line that is not blank or a
// comment assigns a variable (what tells an environment file from YAML),
// and the first syntax error.
func scanEnv(name string, src []byte) (lines []envLine, onlyAssignments bool, err error) {
	onlyAssignments = true
	rest := string(src)
	for n := 1; rest != ""; n++ {
		text, after, nl := strings.Cut(rest, "\n")
		rest = after
		l := envLine{text: text, line: n, hasNewline: nl}
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
				} else if len(val) > 0 && (val[0] == '"' || val[0] == '\'') && err == nil {
					err = &SyntaxError{File: name, Line: n, What: key + " has an unterminated quote",
						Fix: "close it: systemd reads the rest of the file into the value"}
				}
				l.value = val
			} else {
				onlyAssignments = false
			}
		}
		lines = append(lines, l)
	}
	return lines, onlyAssignments, err
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
	if l := e.find(key); l != nil {
		return l.line
	}
	return 0
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
	for _, l := range e.lines {
		if l.key != "" {
			out = append(out, envVar{l.key, l.line})
		}
	}
	return out
}

// envFileOf parses src as an environment file (/etc/default/sensu-agent)
// when it is one: no .yml, .yaml or .json name, and every line that is not
// blank or a comment assigns a variable. ok is false for anything else,
// such as a YAML config; err is a syntax error of an environment file.
func envFileOf(path string, src []byte) (lines []envLine, ok bool, err error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yml", ".yaml", ".json":
		return nil, false, nil
	}
	lines, only, err := scanEnv(path, src)
	if !only || !slices.ContainsFunc(lines, func(l envLine) bool { return l.key != "" }) {
		return nil, false, nil
	}
	return lines, true, err
}

// envRole tells a backend environment file from an agent one by its
// variables (SENSU_BACKEND_<backend key> or SENSU_<agent key>;
// SENSU_BACKEND_URL is the agent's backend-url), then by its name.
func envRole(path string, lines []envLine) (Role, error) {
	score := 0
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l.key, "SENSU_BACKEND_"); ok && rest != "URL" && KnownKey(Backend, envKey(rest)) {
			score++
		} else if rest, ok := strings.CutPrefix(l.key, "SENSU_"); ok && KnownKey(Agent, envKey(rest)) {
			score--
		}
	}
	return roleOf(path, score, "environment file")
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
