package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// rawYAML is the viper codec for the config file. It keeps every scalar's
// text exactly as written instead of YAML's typed value: an unquoted
// +15551234567 would otherwise become the integer 15551234567, and 0123 an
// octal number. Each value then goes through the same parser as the
// environment, so a file, a flag and a variable mean the same thing.
type rawYAML struct{}

func (rawYAML) Encode(map[string]any) ([]byte, error) {
	return nil, errors.New("config: writing config files is not supported")
}

func (rawYAML) Decode(b []byte, out map[string]any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return errors.New("expected a mapping of setting names to values, such as redis_url: redis://redis:6379/0")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := strings.ToLower(k.Value)
		if seen[key] {
			return fmt.Errorf("key %q appears twice", k.Value)
		}
		seen[key] = true
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("key %q: expected a single value, not a list or a mapping (keys are flat, such as redis_url)", k.Value)
		}
		if v.Tag == "!!null" {
			out[key] = ""
		} else {
			out[key] = v.Value
		}
	}
	return nil
}

// readFile loads a YAML config file through viper into lower-case key →
// raw text.
func readFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: config file: %w; check --config / SIGNAL_CLIENT_CONFIG", err)
	}
	reg := viper.NewCodecRegistry()
	if err := reg.RegisterCodec("yaml", rawYAML{}); err != nil {
		return nil, fmt.Errorf("config: config file: %w", err)
	}
	v := viper.NewWithOptions(viper.WithCodecRegistry(reg))
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		var pe viper.ConfigParseError
		if errors.As(err, &pe) {
			err = pe.Unwrap()
		}
		return nil, fmt.Errorf("config: config file %s: %w", path, err)
	}
	out := map[string]string{}
	for _, k := range v.AllKeys() {
		out[k] = v.GetString(k)
	}
	return out, nil
}
