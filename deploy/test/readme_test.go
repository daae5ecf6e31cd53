package deploytest

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yamlv3 "sigs.k8s.io/yaml/goyaml.v3"
)

var update = flag.Bool("update", false, "rewrite the values table of the chart's README.md")

const (
	readmeBegin = "<!-- values:begin (generated from values.yaml by `cd deploy/test && go test -run TestChartReadme -update`) -->"
	readmeEnd   = "<!-- values:end -->"
)

type valueDoc struct {
	Key, Type, Default, Description string
}

// valueDocs walks values.yaml like helm-docs: a key with a "# --" comment is
// documented as a whole (its default shown as JSON); a mapping without one is
// descended into. Every leaf must be documented.
func valueDocs(t *testing.T) []valueDoc {
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	var out []valueDoc
	var walk func(n *yamlv3.Node, prefix string)
	walk = func(n *yamlv3.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := prefix + k.Value
			desc := ""
			for _, line := range strings.Split(k.HeadComment, "\n") {
				if d, ok := strings.CutPrefix(strings.TrimSpace(line), "# -- "); ok {
					desc = d
				}
			}
			if desc == "" && v.Kind == yamlv3.MappingNode && len(v.Content) > 0 {
				walk(v, key+".")
				continue
			}
			if desc == "" {
				t.Errorf("values.yaml: %s has no \"# --\" description", key)
				continue
			}
			var val any
			if err := v.Decode(&val); err != nil {
				t.Fatal(err)
			}
			js, _ := json.Marshal(val)
			typ := map[yamlv3.Kind]string{yamlv3.MappingNode: "object", yamlv3.SequenceNode: "list"}[v.Kind]
			if typ == "" {
				switch val.(type) {
				case string:
					typ = "string"
				case int:
					typ = "int"
				case bool:
					typ = "bool"
				case float64:
					typ = "float"
				default:
					typ = fmt.Sprintf("%T", val)
				}
			}
			out = append(out, valueDoc{Key: key, Type: typ, Default: string(js), Description: desc})
		}
	}
	walk(root.Content[0], "")
	return out
}

func valuesTable(docs []valueDoc) string {
	var b strings.Builder
	b.WriteString("| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n")
	esc := strings.NewReplacer("|", `\|`, "\n", " ")
	for _, d := range docs {
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", d.Key, d.Type, esc.Replace(d.Default), esc.Replace(d.Description))
	}
	return b.String()
}

// TestChartReadme: the README's values table is generated from values.yaml and
// must be current; every value is documented.
func TestChartReadme(t *testing.T) {
	path := filepath.Join(chartDir, "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs := valueDocs(t)
	before, rest, ok1 := strings.Cut(string(readme), readmeBegin)
	_, after, ok2 := strings.Cut(rest, readmeEnd)
	if !ok1 || !ok2 {
		t.Fatalf("README.md lacks the markers %q and %q", readmeBegin, readmeEnd)
	}
	want := before + readmeBegin + "\n" + valuesTable(docs) + readmeEnd + after
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != string(readme) {
		t.Error("README.md's values table is stale: cd deploy/test && go test -run TestChartReadme -update")
	}
}

// TestChartSchemaCoversValues: values.schema.json and values.yaml describe the
// same keys, so a new value cannot slip past additionalProperties: false and a
// removed one leaves no dead schema.
func TestChartSchemaCoversValues(t *testing.T) {
	var schema map[string]any
	b, _ := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	vb, _ := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err := yamlv3.Unmarshal(vb, &vals); err != nil {
		t.Fatal(err)
	}
	var cmp func(path string, s map[string]any, v map[string]any)
	cmp = func(path string, s map[string]any, v map[string]any) {
		props, _ := s["properties"].(map[string]any)
		if s["additionalProperties"] != false {
			return // a free-form object (resources, annotations, ...)
		}
		for k := range v {
			if _, ok := props[k]; !ok {
				t.Errorf("values.yaml has %s%s, the schema does not", path, k)
			}
		}
		for k, ps := range props {
			vv, ok := v[k]
			if !ok {
				if k != "global" {
					t.Errorf("the schema has %s%s, values.yaml does not", path, k)
				}
				continue
			}
			if sub, ok := vv.(map[string]any); ok {
				cmp(path+k+".", ps.(map[string]any), sub)
			}
		}
	}
	cmp("", schema, vals)
}
