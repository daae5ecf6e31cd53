package deploytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	releaseName = "bot"
	releaseNS   = "signal"
	fullname    = "bot-signal-client"
)

// object is one rendered Kubernetes object.
type object struct {
	Source     string // template file
	APIVersion string
	Kind       string
	Name       string
	JSON       []byte
	Typed      any // the strictly decoded k8s.io/api value; nil for custom resources
}

type rendered struct {
	Objects []object
	Notes   string
}

func (r rendered) all(kind string) []object {
	var out []object
	for _, o := range r.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r rendered) get(t *testing.T, kind, name string) object {
	t.Helper()
	for _, o := range r.Objects {
		if o.Kind == kind && o.Name == name {
			return o
		}
	}
	var have []string
	for _, o := range r.Objects {
		have = append(have, o.Kind+"/"+o.Name)
	}
	t.Fatalf("no %s %q rendered; have %v", kind, name, have)
	return object{}
}

func (r rendered) has(kind, name string) bool {
	for _, o := range r.Objects {
		if o.Kind == kind && o.Name == name {
			return true
		}
	}
	return false
}

var (
	chartOnce sync.Once
	theChart  *chartv2.Chart
	chartErr  error
)

func loadChart(t testing.TB) *chartv2.Chart {
	t.Helper()
	chartOnce.Do(func() { theChart, chartErr = loader.Load(chartDir) })
	if chartErr != nil {
		t.Fatalf("load chart: %v", chartErr)
	}
	return theChart
}

// capabilities of a cluster with KEDA and the Prometheus Operator installed.
func capabilities() *common.Capabilities {
	caps := common.DefaultCapabilities.Copy()
	caps.APIVersions = append(caps.APIVersions, "keda.sh/v1alpha1", "keda.sh/v1alpha1/ScaledObject",
		"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule")
	return caps
}

// readValues reads a values file of the chart's ci/ directory.
func readValues(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "ci", name))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("ci/%s: %v", name, err)
	}
	return v
}

// renderValues renders the chart as `helm template bot -n signal` would, with
// schema validation and strict template rendering (a reference to a value that
// does not exist fails).
func renderValues(t testing.TB, vals map[string]any) (rendered, error) {
	t.Helper()
	ch := loadChart(t)
	opts := common.ReleaseOptions{Name: releaseName, Namespace: releaseNS, IsInstall: true, Revision: 1}
	top, err := util.ToRenderValuesWithSchemaValidation(ch, vals, opts, capabilities(), false)
	if err != nil {
		return rendered{}, err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		return rendered{}, err
	}
	var r rendered
	names := sortedKeys(files)
	for _, name := range names {
		content := files[name]
		if strings.HasSuffix(name, "NOTES.txt") {
			r.Notes = content
			continue
		}
		if strings.HasSuffix(name, ".tpl") {
			continue
		}
		for _, doc := range splitYAML(content) {
			o, err := parseObject(name, doc)
			if err != nil {
				return rendered{}, err
			}
			r.Objects = append(r.Objects, o)
		}
	}
	return r, nil
}

func mustRender(t *testing.T, vals map[string]any) rendered {
	t.Helper()
	r, err := renderValues(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

func splitYAML(s string) []string {
	var out []string
	for _, part := range strings.Split("\n"+s, "\n---") {
		trimmed := strings.TrimSpace(part)
		// A document holding only comments renders nothing.
		empty := true
		for _, line := range strings.Split(trimmed, "\n") {
			l := strings.TrimSpace(line)
			if l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			out = append(out, part)
		}
	}
	return out
}

func parseObject(source, doc string) (object, error) {
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return object{}, fmt.Errorf("%s: not valid YAML: %w\n%s", source, err, doc)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return object{}, fmt.Errorf("%s: %w", source, err)
	}
	o := object{Source: source, APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name, JSON: js}
	newT, ok := kubeTypes[head.APIVersion+"/"+head.Kind]
	if !ok {
		if _, cr := crdSchemaFiles[head.APIVersion+"/"+head.Kind]; !cr {
			return object{}, fmt.Errorf("%s: %s %s is neither a known Kubernetes type nor a custom resource with a schema", source, head.APIVersion, head.Kind)
		}
		if err := validateCR(o); err != nil {
			return object{}, fmt.Errorf("%s: %w", source, err)
		}
		return o, nil
	}
	v := newT()
	if err := decodeStrict(js, v); err != nil {
		return object{}, fmt.Errorf("%s: %s %q does not decode strictly into %T: %w", source, head.Kind, head.Metadata.Name, v, err)
	}
	o.Typed = v
	return o, nil
}

// kubeTypes are the Kubernetes API types the chart may render.
var kubeTypes = map[string]func() any{
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/Pod":                                 func() any { return &corev1.Pod{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
}

// decodeStrict decodes JSON into v refusing unknown fields (a misspelt field
// fails here, where the API server would silently drop it) and trailing data.
func decodeStrict(js []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the object")
	}
	return nil
}

// crdSchemaFiles are JSON schemas of the custom resources the chart renders,
// written for these tests from the CRD references (KEDA 2.x ScaledObject,
// Prometheus Operator v1 ServiceMonitor and PrometheusRule). Unlike the
// structural schemas in the CRDs they set additionalProperties: false on every
// object, so a misspelt field fails instead of being pruned by the API server.
var crdSchemaFiles = map[string]string{
	"keda.sh/v1alpha1/ScaledObject":           "scaledobject.json",
	"monitoring.coreos.com/v1/ServiceMonitor": "servicemonitor.json",
	"monitoring.coreos.com/v1/PrometheusRule": "prometheusrule.json",
}

var (
	crdOnce    sync.Once
	crdSchemas map[string]*jsonschema.Schema
	crdErr     error
)

func validateCR(o object) error {
	crdOnce.Do(func() {
		crdSchemas = map[string]*jsonschema.Schema{}
		c := jsonschema.NewCompiler()
		for k, f := range crdSchemaFiles {
			s, err := c.Compile(filepath.Join("testdata", "crds", f))
			if err != nil {
				crdErr = err
				return
			}
			crdSchemas[k] = s
		}
	})
	if crdErr != nil {
		return crdErr
	}
	var inst any
	if err := json.Unmarshal(o.JSON, &inst); err != nil {
		return err
	}
	if err := crdSchemas[o.APIVersion+"/"+o.Kind].Validate(inst); err != nil {
		return fmt.Errorf("%s %q does not match its CRD schema: %#v", o.Kind, o.Name, err)
	}
	// ObjectMeta is not part of a CRD's schema; check it against the real type.
	var meta struct {
		Metadata json.RawMessage `json:"metadata"`
	}
	_ = json.Unmarshal(o.JSON, &meta)
	var om struct {
		corev1.ConfigMap
	}
	return decodeStrict([]byte(`{"metadata":`+string(meta.Metadata)+`}`), &om.ConfigMap)
}

// merge returns a deep copy of base with over applied on top (maps merged, the
// rest replaced), for value-set variations.
func merge(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if om, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = merge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func keysOf(m map[string]string) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}
