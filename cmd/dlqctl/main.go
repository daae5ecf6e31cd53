// Command dlqctl is the operator tool for the dead-letter queue. All logic
// lives in internal/dlqctl; this file only hands over the arguments.
package main

import (
	"os"

	"github.com/signal-client/signal-client/internal/dlqctl"
)

func main() {
	os.Exit(dlqctl.Main(os.Args[1:], os.Stdout, os.Stderr))
}
