package main

import (
	"github.com/spf13/cobra"

	"github.com/sensu-tlsd/sensu-tlsd/config"
)

// app holds what every command shares: the config file flag and the flags
// that override config keys.
type app struct {
	configFile string
	root       *cobra.Command
}

func (a *app) bindGlobalFlags(root *cobra.Command) {
	a.root = root
	root.PersistentFlags().StringVar(&a.configFile, "config", "", "sensu-tlsd config file (env SENSU_TLSD_CONFIG; default "+config.DefaultFile+")")
	config.BindFlags(root.PersistentFlags())
}

// loadConfig reads the configuration with flag > env > file > default
// precedence. A missing file at the default path means defaults only, so
// the CA and issue commands work with no config at all.
func (a *app) loadConfig() (*config.Config, error) {
	return config.Load(config.LoadOptions{File: a.configFile, Flags: a.root.PersistentFlags()})
}
