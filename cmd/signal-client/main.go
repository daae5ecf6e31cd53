// Command signal-client: see README.md and docs/ARCHITECTURE.md. All logic lives in
// internal/app; this file only hands over the role and the arguments.
package main

import (
	"os"

	"github.com/signal-client/signal-client/internal/app"
	"github.com/signal-client/signal-client/internal/config"
)

func main() {
	os.Exit(app.Main(config.RoleAll, os.Args[1:], os.Stdout, os.Stderr, app.RunAll))
}
