module github.com/sensu-tlsd/sensu-tlsd

go 1.26

require (
	github.com/coder/websocket v1.8.15
	github.com/spf13/cobra v1.10.2
	go.yaml.in/yaml/v3 v3.0.6
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.10 // indirect
)
