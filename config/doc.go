// Package config loads, defaults and validates sensu-tlsd's own
// configuration (/etc/sensu/tlsd.yml). Defaults are filled in one place
// (defaults.go); an unknown key is an error naming the file, line and the
// closest known key.
package config
