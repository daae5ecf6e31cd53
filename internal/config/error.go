package config

import (
	"errors"
	"fmt"
	"strconv"
)

// Error is a refused configuration value. Its text is one line naming the
// variable, the value and what is expected, e.g.
//
//	config: WORKER_SHARD_COUNT="abc": expected an integer from 1 to 4096
//
// The value of a secret is never part of the text.
type Error struct {
	// Variable is the environment variable name of the setting, even when the
	// value came from a flag or the config file (Source says which).
	Variable string
	// Value is the refused value; empty when Secret is true.
	Value string
	// Expected says what a valid value looks like, and how to fix it.
	Expected string
	// Source is where the value came from: "" or "env" for the environment,
	// "--flag-name" for a flag, or the config file's path.
	Source string
	// Secret hides the value in Error().
	Secret bool
	// Unset marks a required setting that was not given at all.
	Unset bool
	// Err is an underlying cause (a file that cannot be read), if any.
	Err error
}

func (e *Error) Error() string {
	s := "config: " + e.Variable
	switch {
	case e.Unset:
		s += " is not set"
	case e.Secret:
		s += "=<secret>"
	default:
		s += "=" + strconv.Quote(e.Value)
	}
	if e.Source != "" && e.Source != "env" && !e.Unset {
		s += " (from " + e.Source + ")"
	}
	s += ": expected " + e.Expected
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ErrHelp is matched (errors.Is) by the error Load returns for --help / -h.
var ErrHelp = errors.New("config: help requested")

// HelpError is returned by Load when --help or -h is given: the caller prints
// Usage to stdout and exits 0.
type HelpError struct {
	// Usage lists every flag with its environment variable and default.
	Usage string
}

func (e *HelpError) Error() string { return ErrHelp.Error() }
func (e *HelpError) Is(target error) bool {
	return target == ErrHelp
}

// flagError wraps pflag's own parse errors (unknown flag, missing argument).
func flagError(err error) error {
	return fmt.Errorf("config: %w (run with --help to list the flags)", err)
}
