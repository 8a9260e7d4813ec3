package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// EnvPrefix starts every environment variable sensu-tlsd reads.
const EnvPrefix = "SENSU_TLSD"

// LoadOptions say where a configuration comes from.
type LoadOptions struct {
	// File is the YAML file. "" means $SENSU_TLSD_CONFIG, else DefaultFile;
	// a missing file at the default path is not an error (defaults apply),
	// a missing file that was named explicitly is.
	File string
	// Flags holds flags registered by BindFlags; only flags the user set
	// override the file. May be nil.
	Flags *pflag.FlagSet
}

// Load reads, merges (flag > env > file > default), defaults and validates a
// configuration. On any error nothing is returned, so a caller never runs on
// half a config.
func Load(o LoadOptions) (*Config, error) {
	file, explicit := o.File, o.File != ""
	if !explicit {
		if v, ok := os.LookupEnv(EnvPrefix + "_CONFIG"); ok && v != "" {
			file, explicit = v, true
		} else {
			file = DefaultFile
		}
	}

	c := &Config{}
	data, err := pki.ReadFileLimited(file, pki.MaxConfigFileBytes, "a sensu-tlsd config")
	switch {
	case err == nil:
		if err := decodeFile(file, data, c); err != nil {
			return nil, err
		}
		c.File = file
	case errors.Is(err, os.ErrNotExist) && !explicit:
		// No config at the default path: defaults, env and flags only.
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: config file does not exist: create it (see examples/quickstart.yml) or point --config / SENSU_TLSD_CONFIG at the right file", file)
	default:
		if fe := (*pki.FileError)(nil); errors.As(err, &fe) {
			err = fe.Err // the path is said once, below
		}
		return nil, fmt.Errorf("%s: cannot read config: %w", file, err)
	}

	if err := overlay(c, o.Flags); err != nil {
		return nil, err
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes and validates a configuration from YAML bytes; name is used
// in messages. Env and flags are not consulted.
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{}
	if err := decodeFile(name, data, c); err != nil {
		return nil, err
	}
	c.File = name
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeFile parses YAML strictly: an unknown key is an error with its line
// and the closest known key, because Sensu's silent acceptance of typos
// (cert_file) is exactly how TLS ends up disabled without a word.
func decodeFile(file string, data []byte, c *Config) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: not valid YAML: %v", file, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: the top level must be a mapping of keys (state-dir: ..., certificates: ...)", file, root.Line)
	}
	if err := checkNode(file, "", root, reflect.TypeOf(*c), c.markSet); err != nil {
		return err
	}
	if err := root.Decode(c); err != nil {
		return fmt.Errorf("%s: %v", file, err)
	}
	return nil
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	fileModeType = reflect.TypeOf(FileMode(0))
	issuerType   = reflect.TypeOf(Issuer{})
)

// checkNode walks a YAML node against the Go type it will decode into,
// rejecting unknown keys and normalising values yaml.v3 cannot decode alone
// (durations in days, octal modes, an issuer named by its type alone). It
// reports every problem, each with its line, not only the first.
func checkNode(file, path string, n *yaml.Node, t reflect.Type, set func(path string)) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == issuerType && n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			// "issuer: files" is short for "issuer: {type: files}".
			typ := *n
			*n = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column,
				Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: "type", Line: n.Line, Column: n.Column}, &typ}}
		}
		fields := yamlFields(t)
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s:%d: %s must be a mapping of keys: %s", file, n.Line, keyName(path), mappingHint(path, t, fields))
		}
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				errs = append(errs, unknownKeyError(file, path, k, fields))
				continue
			}
			errs = append(errs, checkNode(file, join(path, k.Value), v, f.Type, set))
		}
		return errors.Join(errs...)
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("%s:%d: %s must be a list", file, n.Line, keyName(path))
		}
		var errs []error
		for i, item := range n.Content {
			errs = append(errs, checkNode(file, fmt.Sprintf("%s[%d]", path, i), item, t.Elem(), set))
		}
		return errors.Join(errs...)
	default:
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s:%d: %s must be a single value, not a %s", file, n.Line, keyName(path), kindName(n.Kind))
		}
		set(path)
		switch t {
		case durationType:
			d, err := ParseDuration(n.Value)
			if err != nil {
				return fmt.Errorf("%s:%d: %s: %v", file, n.Line, keyName(path), err)
			}
			n.Value, n.Tag = d.String(), "!!str"
		case fileModeType:
			if _, err := ParseFileMode(n.Value); err != nil {
				return fmt.Errorf("%s:%d: %s: %v", file, n.Line, keyName(path), err)
			}
			n.Tag = "!!str"
		}
	}
	return nil
}

// mappingHint shows how the mapping at path is written, with its keys.
func mappingHint(path string, t reflect.Type, fields map[string]reflect.StructField) string {
	names := make([]string, 0, len(fields))
	for i := 0; i < t.NumField(); i++ { // in declaration order, as docs/config.md lists them
		if name := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; fields[name].Name != "" {
			names = append(names, name)
		}
	}
	last := path[strings.LastIndex(path, ".")+1:]
	if strings.HasSuffix(last, "]") {
		return fmt.Sprintf("write each entry as - {%s: ...} (its keys: %s)", names[0], strings.Join(names, ", "))
	}
	return fmt.Sprintf("write %s: {%s: ...} (its keys: %s)", last, names[0], strings.Join(names, ", "))
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

func keyName(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps YAML keys to struct fields, skipping `yaml:"-"`.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	m := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		m[name] = f
	}
	return m
}

func unknownKeyError(file, path string, k *yaml.Node, fields map[string]reflect.StructField) error {
	known := make([]string, 0, len(fields))
	for name := range fields {
		known = append(known, name)
	}
	msg := fmt.Sprintf("%s:%d: unknown key %q", file, k.Line, join(path, k.Value))
	if s := Suggest(k.Value, known); s != "" {
		msg += fmt.Sprintf(": did you mean %q?", s)
	} else {
		msg += ": remove it (sensu-tlsd rejects keys it does not know, unlike Sensu, so a typo cannot silently disable TLS)"
	}
	return errors.New(msg)
}

// ParseDuration accepts Go durations ("720h", "90m") and whole days ("90d"),
// since certificate lifetimes are thought of in days.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || !(n >= 0 && n*float64(24*time.Hour) < math.MaxInt64) { // also rejects NaN and overflow
			return 0, fmt.Errorf("%q is not a duration: use a number of days (90d) or a Go duration (2160h, 15m)", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration: use a number of days (90d) or a Go duration (2160h, 15m)", s)
	}
	return d, nil
}

// ParseFileMode parses an octal mode such as "0600" or "640".
func ParseFileMode(s string) (FileMode, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(s), "0o"), 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%q is not a file mode: write it in octal, quoted, like \"0600\"", s)
	}
	return FileMode(v), nil
}

// UnmarshalYAML reads an octal mode.
func (m *FileMode) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseFileMode(n.Value)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalYAML writes the mode as a quoted octal string.
func (m FileMode) MarshalYAML() (any, error) { return m.String(), nil }

// String is the mode in octal, like "0600".
func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// overlay applies environment variables and flags over the file's values
// through viper, so the precedence (flag > env) is the one Sensu uses.
func overlay(c *Config, flags *pflag.FlagSet) error {
	v := viper.New()
	for _, k := range Keys() {
		if err := v.BindEnv(k.Path, k.Env); err != nil {
			return err
		}
		if flags != nil {
			if f := flags.Lookup(k.Flag); f != nil {
				if err := v.BindPFlag(k.Path, f); err != nil {
					return err
				}
			}
		}
	}
	for _, k := range Keys() {
		if !v.IsSet(k.Path) {
			continue
		}
		c.markSet(k.Path)
		if err := k.set(c, v.GetString(k.Path)); err != nil {
			source := "environment variable " + k.Env
			if flags != nil {
				if f := flags.Lookup(k.Flag); f != nil && f.Changed {
					source = "flag --" + k.Flag
				}
			}
			return fmt.Errorf("%s (key %s): %v", source, k.Path, err)
		}
	}
	return nil
}

// markSet records that the user set the key at path.
func (c *Config) markSet(path string) {
	if c.explicit == nil {
		c.explicit = map[string]bool{}
	}
	c.explicit[path] = true
}
