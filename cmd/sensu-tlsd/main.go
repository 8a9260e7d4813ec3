package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "sensu-tlsd:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "sensu-tlsd:", err)
		os.Exit(1)
	}
}

// exitError carries a specific exit status (check plugins need 0/1/2/3).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }
