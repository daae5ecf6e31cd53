package deploytest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

var dashboardDir = repoPath("deploy", "grafana")

type dashboardPanel struct {
	Type       string           `json:"type"`
	Title      string           `json:"title"`
	Datasource *dashboardDS     `json:"datasource"`
	Targets    []dashboardQuery `json:"targets"`
	Panels     []dashboardPanel `json:"panels"`
}

type dashboardDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardQuery struct {
	Datasource *dashboardDS `json:"datasource"`
	Expr       string       `json:"expr"`
}

type dashboard struct {
	UID        string           `json:"uid"`
	Title      string           `json:"title"`
	Inputs     json.RawMessage  `json:"__inputs"`
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *dashboardDS    `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

func dashboardFiles(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(dashboardDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s (%v)", dashboardDir, err)
	}
	return files
}

func loadDashboard(t *testing.T, path string) dashboard {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

func flattenPanels(ps []dashboardPanel) []dashboardPanel {
	var out []dashboardPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flattenPanels(p.Panels)...)
	}
	return out
}

// grafanaVars replaces Grafana's variables so an expression parses as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// TestDashboards: provisioned dashboards must work without the import wizard
// (no __inputs, every query on the datasource variable), keep a stable uid for
// links, and hold valid PromQL.
func TestDashboards(t *testing.T) {
	for _, f := range dashboardFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			d := loadDashboard(t, f)
			if len(d.Inputs) != 0 {
				t.Error("__inputs present: provisioned dashboards then fail with \"Datasource ${DS_PROMETHEUS} was not found\"")
			}
			if d.UID == "" || len(d.UID) > 40 {
				t.Errorf("uid %q: pin a uid of at most 40 characters", d.UID)
			}
			hasDS := false
			for _, v := range d.Templating.List {
				if v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
					hasDS = true
				}
				if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
					t.Errorf("variable %s does not use ${datasource}", v.Name)
				}
			}
			if !hasDS {
				t.Error("no datasource variable of type prometheus")
			}
			queries := 0
			for _, p := range flattenPanels(d.Panels) {
				if len(p.Targets) == 0 {
					continue
				}
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q does not use ${datasource}", p.Title)
				}
				for _, q := range p.Targets {
					queries++
					if q.Datasource == nil || q.Datasource.UID != "${datasource}" {
						t.Errorf("panel %q: a query does not use ${datasource}", p.Title)
					}
					if _, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(q.Expr)); err != nil {
						t.Errorf("panel %q: %q: %v", p.Title, q.Expr, err)
					}
					if strings.Contains(q.Expr, "rate(") && !strings.Contains(q.Expr, "$__rate_interval") && !strings.Contains(q.Expr, "[1h]") {
						t.Errorf("panel %q: use $__rate_interval in %q", p.Title, q.Expr)
					}
				}
			}
			if queries < 20 {
				t.Errorf("%d queries; the dashboard lost its panels", queries)
			}
		})
	}
}

// TestChartFilesInSync: the chart ships copies of the alert rules and the
// dashboards (a chart cannot read files outside its directory); they must stay
// identical to deploy/prometheus and deploy/grafana, which docker-compose uses.
func TestChartFilesInSync(t *testing.T) {
	pairs := map[string]string{repoPath("deploy", "prometheus", "alerts.yaml"): filepath.Join(chartDir, "files", "alerts.yaml")}
	for _, f := range dashboardFiles(t) {
		pairs[f] = filepath.Join(chartDir, "files", "dashboards", filepath.Base(f))
	}
	copies, _ := filepath.Glob(filepath.Join(chartDir, "files", "dashboards", "*"))
	if len(copies) != len(pairs)-1 {
		t.Errorf("chart files/dashboards holds %d files, deploy/grafana %d", len(copies), len(pairs)-1)
	}
	for src, dst := range pairs {
		a, err1 := os.ReadFile(src)
		b, err2 := os.ReadFile(dst)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s (%v %v): cp %s %s", dst, src, err1, err2, src, dst)
		}
	}
}

// metricUse is where a metric name is used.
type metricUse map[string][]string

func (m metricUse) add(name, where string) { m[name] = append(m[name], where) }

// metricsOf adds the metric names selected by a PromQL expression.
func metricsOf(t *testing.T, uses metricUse, expr, where string) {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		t.Fatalf("%s: %q: %v", where, expr, err)
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name == "" {
				t.Errorf("%s: selector %s names no metric", where, vs)
			}
			uses.add(name, where)
		}
		return nil
	})
}

// usedMetrics collects every metric name the dashboards, the alert rules (the
// static file and the chart's own) and the KEDA query use.
func usedMetrics(t *testing.T) metricUse {
	uses := metricUse{}
	for _, f := range dashboardFiles(t) {
		d := loadDashboard(t, f)
		for _, p := range flattenPanels(d.Panels) {
			for _, q := range p.Targets {
				metricsOf(t, uses, q.Expr, filepath.Base(f)+": "+p.Title)
			}
		}
	}
	for _, g := range loadRuleFile(t, repoPath("deploy", "prometheus", "alerts.yaml")).Groups {
		for _, r := range g.Rules {
			metricsOf(t, uses, r.Expr, "alert "+r.Alert)
		}
	}
	r := mustRender(t, readValues(t, "keda-values.yaml"))
	var pr struct {
		Spec struct {
			Groups []ruleGroup `json:"groups"`
		} `json:"spec"`
	}
	_ = json.Unmarshal(r.get(t, "PrometheusRule", fullname).JSON, &pr)
	for _, g := range pr.Spec.Groups {
		for _, rl := range g.Rules {
			metricsOf(t, uses, rl.Expr, "chart alert "+rl.Alert)
		}
	}
	var so struct {
		Spec struct {
			Triggers []struct {
				Metadata map[string]string `json:"metadata"`
			} `json:"triggers"`
		} `json:"spec"`
	}
	_ = json.Unmarshal(r.get(t, "ScaledObject", fullname+"-worker").JSON, &so)
	for _, tr := range so.Spec.Triggers {
		metricsOf(t, uses, tr.Metadata["query"], "KEDA trigger")
	}
	return uses
}

// histogramSuffix strips the series suffix of a classic histogram.
var histogramSuffix = regexp.MustCompile(`_(bucket|sum|count)$`)

func sortedUses(m metricUse) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
