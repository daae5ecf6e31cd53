package config

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Entry is one line of --print-config: the effective value of a setting,
// masked, and where it came from.
type Entry struct {
	Name   string // environment variable
	Flag   string // flag name, with "--"
	Value  string // effective value; secrets "*****", URLs without password, phone number with its last two digits
	Origin string // "default", "env NAME", "flag --name", "file PATH (key)", "derived from ..."
}

// Masked lists every setting's effective value with secrets masked, in the
// order of docs/configuration.md. It is safe to print and to log.
func (c *Config) Masked() []Entry {
	out := make([]Entry, 0, len(settings))
	for _, s := range settings {
		v := s.get(c)
		if s.show != nil {
			v = s.show(v)
		}
		if s.name == "LOG_REDACTION_KEY" && v == "" {
			v = "(random per process)"
		}
		origin := c.origins[s.name]
		if origin == "" {
			origin = "default"
		}
		out = append(out, Entry{Name: s.name, Flag: "--" + kebab(s.name), Value: v, Origin: origin})
	}
	return out
}

// Print writes the effective configuration as NAME=value lines with their
// origin, secrets masked, followed by the warnings. It is what --print-config
// shows.
func (c *Config) Print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# effective configuration of %s (secrets masked)\n", c.Role)
	if c.ConfigFile != "" {
		fmt.Fprintf(&b, "# config file: %s\n", c.ConfigFile)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, e := range c.Masked() {
		fmt.Fprintf(tw, "%s=%s\t# %s\n", e.Name, e.Value, e.Origin)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("config: print: %w", err)
	}
	for _, wmsg := range c.Warnings {
		fmt.Fprintf(&b, "# warning: %s\n", wmsg)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("config: print: %w", err)
	}
	return nil
}
