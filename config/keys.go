package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Key is one configuration key with the flag and environment variable that
// can also set it. Lists of objects (certificates, services, listeners) are
// keys too: their flag or env value is YAML (a JSON array works).
type Key struct {
	Path  string // dotted YAML path: renewal.before
	Flag  string // renewal-before
	Env   string // SENSU_TLSD_RENEWAL_BEFORE
	index []int
	typ   reflect.Type
}

// Keys lists every key of Config, derived from its YAML tags so a new field
// gets its flag and env var without more code.
func Keys() []Key {
	var keys []Key
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			path := join(prefix, name)
			idx := append(append([]int(nil), index...), i)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, path, idx)
				continue
			}
			flag := strings.ReplaceAll(path, ".", "-")
			keys = append(keys, Key{
				Path:  path,
				Flag:  flag,
				Env:   EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_")),
				index: idx,
				typ:   f.Type,
			})
		}
	}
	walk(reflect.TypeOf(Config{}), "", nil)
	return keys
}

// shownFlags stay in --help, with what they pick: the tour runs on them,
// with no config file.
var shownFlags = map[string]string{
	"state-dir": "directory for the CA, issued certificates and daemon state",
	"ca-dir":    "directory of the local CA's ca.pem and ca-key.pem (default: the state directory)",
}

// BindFlags registers a flag for every key on fs. All but shownFlags are
// hidden from --help, where forty of them would bury each command's own
// flags; `sensu-tlsd config keys` lists them all.
func BindFlags(fs *pflag.FlagSet) {
	for _, k := range Keys() {
		if what, ok := shownFlags[k.Flag]; ok {
			fs.String(k.Flag, "", what+"; "+k.Usage())
			continue
		}
		fs.String(k.Flag, "", k.Usage())
		if err := fs.MarkHidden(k.Flag); err != nil {
			panic(err) // the flag was registered on the line above
		}
	}
}

// Usage is a one-line description of how to set the key.
func (k Key) Usage() string {
	if k.typ.Kind() == reflect.Slice {
		return fmt.Sprintf("config key %s as YAML (env %s)", k.Path, k.Env)
	}
	return fmt.Sprintf("config key %s (env %s)", k.Path, k.Env)
}

// Value formats the key's value in c, as YAML would show it.
func (k Key) Value(c *Config) string {
	f := reflect.ValueOf(c).Elem().FieldByIndex(k.index)
	switch {
	case k.typ == durationType:
		return time.Duration(f.Int()).String()
	case k.typ == fileModeType:
		return FileMode(f.Uint()).String()
	case k.typ.Kind() == reflect.Slice:
		return fmt.Sprintf("(%d entries)", f.Len())
	}
	return fmt.Sprint(f.Interface())
}

// set parses s into the field k names.
func (k Key) set(c *Config, s string) error {
	f := reflect.ValueOf(c).Elem().FieldByIndex(k.index)
	switch {
	case k.typ == durationType:
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case k.typ == fileModeType:
		m, err := ParseFileMode(s)
		if err != nil {
			return err
		}
		f.SetUint(uint64(m))
	case k.typ.Kind() == reflect.String:
		f.SetString(s)
	case k.typ.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		f.SetBool(b)
	case k.typ.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		f.SetInt(int64(n))
	case k.typ.Kind() == reflect.Slice:
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(s), &n); err != nil {
			return fmt.Errorf("not valid YAML: %v", err)
		}
		if len(n.Content) == 0 {
			return nil
		}
		if err := checkNode("value", k.Path, n.Content[0], k.typ, func(string) {}); err != nil {
			return err
		}
		ptr := reflect.New(k.typ)
		if err := n.Content[0].Decode(ptr.Interface()); err != nil {
			return err
		}
		f.Set(ptr.Elem())
	default:
		return fmt.Errorf("cannot set a %s from a flag or env var", k.typ)
	}
	return nil
}
