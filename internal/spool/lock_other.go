//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package spool

import (
	"fmt"
	"os"
	"runtime"
)

// lockDir is not implemented here: without flock two processes could share a
// spool, so the spool refuses to open rather than risk it.
func lockDir(dir string) (*os.File, error) {
	return nil, fmt.Errorf("spool: %s: directory locking is not supported on %s; disable DURABLE_QUEUE_ENABLED", dir, runtime.GOOS)
}
