package main

import (
	"github.com/spf13/cobra"
)

// app holds what every command shares: the config file flag and the loaded
// configuration.
type app struct {
	configFile string
}

func (a *app) bindGlobalFlags(root *cobra.Command) {
	root.PersistentFlags().StringVar(&a.configFile, "config", "", "sensu-tlsd config file (env SENSU_TLSD_CONFIG; default /etc/sensu/tlsd.yml)")
}
