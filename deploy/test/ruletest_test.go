package deploytest

// A rule unit-test runner for files in promtool's `test rules` format.
//
// Why not promtool itself: it is a main package (not importable), and the
// Prometheus `rules` package it builds on imports the notifier and, through the
// configuration package, every cloud SDK of service discovery; compiling those
// cold takes minutes. This runner keeps promtool's semantics with the real PromQL
// engine (github.com/prometheus/prometheus/promql, the same code Prometheus
// evaluates rules with) and re-implements the small part on top: input series
// notation (parsed by the PromQL parser's series-description parser), evaluation
// every evaluation_interval from 0 to the last eval_time, alert states (pending
// until `for` has passed, firing, resolved when the series goes), labels and
// annotation templates ($labels, $value, humanize, humanizeDuration,
// humanizePercentage), and the comparison of firing alerts at each eval_time.
// What the files use beyond that (recording rules, promql_expr_test,
// keep_firing_for, external labels, other template functions) is refused with
// an error rather than ignored, so a test cannot pass by being misread.

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"sigs.k8s.io/yaml"
)

type ruleFile struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name     string         `json:"name"`
	Interval model.Duration `json:"interval,omitempty"`
	Rules    []rule         `json:"rules"`
}

type rule struct {
	Alert         string            `json:"alert,omitempty"`
	Record        string            `json:"record,omitempty"`
	Expr          string            `json:"expr"`
	For           model.Duration    `json:"for,omitempty"`
	KeepFiringFor model.Duration    `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type ruleTestFile struct {
	RuleFiles          []string       `json:"rule_files"`
	EvaluationInterval model.Duration `json:"evaluation_interval"`
	Tests              []ruleTest     `json:"tests"`
}

type ruleTest struct {
	Name           string          `json:"name"`
	Interval       model.Duration  `json:"interval"`
	InputSeries    []inputSeries   `json:"input_series"`
	AlertRuleTests []alertTestCase `json:"alert_rule_test"`
}

type inputSeries struct {
	Series string `json:"series"`
	Values string `json:"values"`
}

type alertTestCase struct {
	EvalTime  model.Duration `json:"eval_time"`
	Alertname string         `json:"alertname"`
	ExpAlerts []expAlert     `json:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `json:"exp_labels"`
	ExpAnnotations map[string]string `json:"exp_annotations"`
}

const model1m = model.Duration(time.Minute)

func pdur(d time.Duration) model.Duration { return model.Duration(d) }

func loadRuleFile(t testing.TB, path string) ruleFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// runRuleTestFile runs every test of a promtool test file as a subtest.
func runRuleTestFile(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleTestFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v (fields this runner does not support are refused)", path, err)
	}
	var groups []ruleGroup
	for _, rf := range f.RuleFiles {
		groups = append(groups, loadRuleFile(t, filepath.Join(filepath.Dir(path), rf)).Groups...)
	}
	interval := time.Duration(f.EvaluationInterval)
	if interval == 0 {
		interval = time.Minute
	}
	for _, tc := range f.Tests {
		t.Run(tc.Name, func(t *testing.T) { runRuleTest(t, groups, tc, interval) })
	}
}

// runRuleTest evaluates groups over tc's input series like promtool does and
// fails t for every eval_time whose firing alerts differ from the expected.
func runRuleTest(t *testing.T, groups []ruleGroup, tc ruleTest, evalInterval time.Duration) {
	t.Helper()
	mismatches, err := evalRuleTest(groups, tc, evalInterval)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mismatches {
		t.Error(m)
	}
}

// evalRuleTest returns one message per eval_time whose firing alerts differ
// from the expected ones; err reports a test it cannot run.
func evalRuleTest(groups []ruleGroup, tc ruleTest, evalInterval time.Duration) (mismatches []string, err error) {
	p := parser.NewParser(parser.Options{})
	step := time.Duration(tc.Interval)
	if step == 0 {
		step = evalInterval
	}
	st := &memStorage{}
	for _, in := range tc.InputSeries {
		lset, vals, err := p.ParseSeriesDesc(in.Series + " " + in.Values)
		if err != nil {
			return nil, fmt.Errorf("input series %s %q: %v", in.Series, in.Values, err)
		}
		var samples []chunks.Sample
		for i, v := range vals {
			if v.Omitted {
				continue
			}
			if v.Histogram != nil {
				return nil, fmt.Errorf("input series %s: native histograms are not supported by this runner", in.Series)
			}
			samples = append(samples, fsample{t: int64(i) * step.Milliseconds(), f: v.Value})
		}
		st.series = append(st.series, storage.NewListSeries(lset, samples))
	}
	type ruleState struct {
		rule   rule
		active map[string]*alertState
	}
	var states []*ruleState
	byName := map[string][]*ruleState{}
	for _, g := range groups {
		if g.Interval != 0 && time.Duration(g.Interval) != evalInterval {
			return nil, fmt.Errorf("group %s: interval %v differs from evaluation_interval %v: not supported", g.Name, g.Interval, evalInterval)
		}
		for _, r := range g.Rules {
			if r.Record != "" || r.Alert == "" {
				return nil, fmt.Errorf("group %s: only alerting rules are supported (record %q)", g.Name, r.Record)
			}
			if r.KeepFiringFor != 0 {
				return nil, fmt.Errorf("%s: keep_firing_for is not supported", r.Alert)
			}
			if _, err := p.ParseExpr(r.Expr); err != nil {
				return nil, fmt.Errorf("%s: expr does not parse: %v", r.Alert, err)
			}
			s := &ruleState{rule: r, active: map[string]*alertState{}}
			states = append(states, s)
			byName[r.Alert] = append(byName[r.Alert], s)
		}
	}
	var maxEval time.Duration
	checks := map[time.Duration][]alertTestCase{}
	for _, at := range tc.AlertRuleTests {
		if _, ok := byName[at.Alertname]; !ok {
			return nil, fmt.Errorf("eval_time %v: no alerting rule named %s", at.EvalTime, at.Alertname)
		}
		d := time.Duration(at.EvalTime)
		if d%evalInterval != 0 {
			return nil, fmt.Errorf("eval_time %v is not a multiple of the evaluation interval %v", d, evalInterval)
		}
		checks[d] = append(checks[d], at)
		maxEval = max(maxEval, d)
	}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
		EnableAtModifier: true, EnableNegativeOffset: true, Parser: p,
		NoStepSubqueryIntervalFn: func(int64) int64 { return evalInterval.Milliseconds() }})
	ctx := context.Background()
	for at := time.Duration(0); at <= maxEval; at += evalInterval {
		ts := time.Unix(0, 0).UTC().Add(at)
		for _, s := range states {
			vec, err := instantQuery(ctx, eng, st, s.rule.Expr, ts)
			if err != nil {
				return nil, fmt.Errorf("%s at %v: %v", s.rule.Alert, at, err)
			}
			seen := map[string]bool{}
			for _, smp := range vec {
				lb := labels.NewBuilder(smp.Metric)
				lb.Del(labels.MetricName)
				tmplLabels := lb.Labels().Map()
				for k, v := range s.rule.Labels {
					ev, err := expandTemplate(v, tmplLabels, smp.F)
					if err != nil {
						return nil, fmt.Errorf("%s: label %s: %v", s.rule.Alert, k, err)
					}
					lb.Set(k, ev)
				}
				lb.Set(labels.AlertName, s.rule.Alert)
				lset := lb.Labels()
				key := lset.String()
				if seen[key] {
					return nil, fmt.Errorf("%s at %v: several series with labels %s", s.rule.Alert, at, key)
				}
				seen[key] = true
				anns := map[string]string{}
				for k, v := range s.rule.Annotations {
					ev, err := expandTemplate(v, tmplLabels, smp.F)
					if err != nil {
						return nil, fmt.Errorf("%s: annotation %s: %v", s.rule.Alert, k, err)
					}
					anns[k] = ev
				}
				a, ok := s.active[key]
				if !ok || a.resolved {
					a = &alertState{labels: lset, activeAt: at}
					s.active[key] = a
				}
				a.annotations = anns
			}
			for key, a := range s.active {
				if !seen[key] {
					if a.firing {
						a.resolved, a.firing = true, false
					} else {
						delete(s.active, key)
					}
					continue
				}
				if !a.firing && at-a.activeAt >= time.Duration(s.rule.For) {
					a.firing = true
				}
			}
		}
		for _, c := range checks[at] {
			var got []string
			for _, s := range byName[c.Alertname] {
				for _, a := range s.active {
					if a.firing {
						got = append(got, describeAlert(a.labels.Map(), a.annotations))
					}
				}
			}
			var want []string
			for _, e := range c.ExpAlerts {
				l := map[string]string{labels.AlertName: c.Alertname}
				for k, v := range e.ExpLabels {
					l[k] = v
				}
				want = append(want, describeAlert(l, e.ExpAnnotations))
			}
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				mismatches = append(mismatches, fmt.Sprintf("%s at %v:\n got firing:\n  %s\n want:\n  %s", c.Alertname, at, strings.Join(got, "\n  "), strings.Join(want, "\n  ")))
			}
		}
	}
	return mismatches, nil
}

type alertState struct {
	labels      labels.Labels
	annotations map[string]string
	activeAt    time.Duration
	firing      bool
	resolved    bool
}

func describeAlert(l, a map[string]string) string {
	var b strings.Builder
	b.WriteString(labels.FromMap(l).String())
	for _, k := range sortedKeys(a) {
		fmt.Fprintf(&b, " %s=%q", k, a[k])
	}
	return b.String()
}

func instantQuery(ctx context.Context, eng *promql.Engine, q storage.Queryable, expr string, ts time.Time) (promql.Vector, error) {
	qry, err := eng.NewInstantQuery(ctx, q, nil, expr, ts)
	if err != nil {
		return nil, err
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v, nil
	case promql.Scalar:
		return promql.Vector{promql.Sample{T: v.T, F: v.V}}, nil
	default:
		return nil, fmt.Errorf("rule result is %s, want a vector", res.Value.Type())
	}
}

// expandTemplate expands an alert label or annotation like Prometheus does.
func expandTemplate(text string, l map[string]string, v float64) (string, error) {
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	tmpl, err := template.New("alert").Option("missingkey=zero").Funcs(templateFuncs).Parse(defs + text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = tmpl.Execute(&b, struct {
		Labels, ExternalLabels map[string]string
		ExternalURL            string
		Value                  float64
	}{l, map[string]string{}, "", v})
	return b.String(), err
}

// templateFuncs are Prometheus' template functions of the same names.
var templateFuncs = template.FuncMap{
	"humanize": func(v float64) string {
		if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprintf("%.4g", v)
		}
		if math.Abs(v) >= 1 {
			prefix := ""
			for _, p := range []string{"k", "M", "G", "T", "P", "E", "Z", "Y"} {
				if math.Abs(v) < 1000 {
					break
				}
				prefix = p
				v /= 1000
			}
			return fmt.Sprintf("%.4g%s", v, prefix)
		}
		prefix := ""
		for _, p := range []string{"m", "u", "n", "p", "f", "a", "z", "y"} {
			if math.Abs(v) >= 1 {
				break
			}
			prefix = p
			v *= 1000
		}
		return fmt.Sprintf("%.4g%s", v, prefix)
	},
	"humanizeDuration": func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprintf("%.4g", v)
		}
		if v == 0 {
			return fmt.Sprintf("%.4gs", v)
		}
		if math.Abs(v) >= 1 {
			sign := ""
			if v < 0 {
				sign, v = "-", -v
			}
			d := int64(v)
			seconds, minutes, hours, days := d%60, (d/60)%60, (d/3600)%24, d/86400
			switch {
			case days != 0:
				return fmt.Sprintf("%s%dd %dh %dm %ds", sign, days, hours, minutes, seconds)
			case hours != 0:
				return fmt.Sprintf("%s%dh %dm %ds", sign, hours, minutes, seconds)
			case minutes != 0:
				return fmt.Sprintf("%s%dm %ds", sign, minutes, seconds)
			}
			return fmt.Sprintf("%s%.4gs", sign, v)
		}
		prefix := ""
		for _, p := range []string{"m", "u", "n", "p", "f", "a", "z", "y"} {
			if math.Abs(v) >= 1 {
				break
			}
			prefix = p
			v *= 1000
		}
		return fmt.Sprintf("%.4g%ss", v, prefix)
	},
	"humanizePercentage": func(v float64) string { return fmt.Sprintf("%.4g%%", v*100) },
}

// memStorage is an in-memory storage.Queryable over float samples.
type memStorage struct{ series []storage.Series }

func (m *memStorage) Querier(mint, maxt int64) (storage.Querier, error) { return m, nil }

func (m *memStorage) Select(_ context.Context, sortSeries bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, s := range m.series {
		ok := true
		for _, mt := range ms {
			if !mt.Matches(s.Labels().Get(mt.Name)) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	if sortSeries {
		sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels(), out[j].Labels()) < 0 })
	}
	return &sliceSeriesSet{series: out, i: -1}
}

func (m *memStorage) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, fmt.Errorf("label values are not supported")
}

func (m *memStorage) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, fmt.Errorf("label names are not supported")
}

func (m *memStorage) Close() error { return nil }

type sliceSeriesSet struct {
	series []storage.Series
	i      int
}

func (s *sliceSeriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *sliceSeriesSet) At() storage.Series                { return s.series[s.i] }
func (s *sliceSeriesSet) Err() error                        { return nil }
func (s *sliceSeriesSet) Warnings() annotations.Annotations { return nil }

// fsample is one float sample (chunks.Sample).
type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                      { return s.t }
func (s fsample) ST() int64                     { return 0 }
func (s fsample) F() float64                    { return s.f }
func (s fsample) H() *histogram.Histogram       { return nil }
func (s fsample) FH() *histogram.FloatHistogram { return nil }
func (s fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample           { return s }

// TestAlertRules runs deploy/prometheus/alerts_test.yaml.
func TestAlertRules(t *testing.T) {
	runRuleTestFile(t, repoPath("deploy", "prometheus", "alerts_test.yaml"))
}

// TestRuleRunnerCatchesMistakes: the runner must fail a test whose expectation
// is wrong, or it proves nothing.
func TestRuleRunnerCatchesMistakes(t *testing.T) {
	groups := []ruleGroup{{Name: "g", Rules: []rule{{Alert: "High", Expr: "x > 1", For: pdur(2 * time.Minute),
		Labels: map[string]string{"severity": "page"}, Annotations: map[string]string{"d": "{{ $labels.job }} at {{ $value | humanize }}"}}}}}
	series := []inputSeries{{Series: `x{job="a"}`, Values: "0 2 2 2 2 0 2"}}
	good := []alertTestCase{
		{EvalTime: pdur(2 * time.Minute), Alertname: "High"}, // pending, not firing
		{EvalTime: pdur(3 * time.Minute), Alertname: "High", ExpAlerts: []expAlert{{ExpLabels: map[string]string{"job": "a", "severity": "page"}, ExpAnnotations: map[string]string{"d": "a at 2"}}}},
		{EvalTime: pdur(5 * time.Minute), Alertname: "High"}, // resolved
		{EvalTime: pdur(6 * time.Minute), Alertname: "High"}, // pending again: a new alert
	}
	runRuleTest(t, groups, ruleTest{Interval: model1m, InputSeries: series, AlertRuleTests: good}, time.Minute)
	for _, bad := range []alertTestCase{
		{EvalTime: pdur(2 * time.Minute), Alertname: "High", ExpAlerts: []expAlert{{ExpLabels: map[string]string{"job": "a", "severity": "page"}, ExpAnnotations: map[string]string{"d": "a at 2"}}}},
		{EvalTime: pdur(3 * time.Minute), Alertname: "High", ExpAlerts: []expAlert{{ExpLabels: map[string]string{"job": "a"}, ExpAnnotations: map[string]string{"d": "a at 2"}}}},
		{EvalTime: pdur(3 * time.Minute), Alertname: "High", ExpAlerts: []expAlert{{ExpLabels: map[string]string{"job": "a", "severity": "page"}, ExpAnnotations: map[string]string{"d": "a at 3"}}}},
		{EvalTime: pdur(3 * time.Minute), Alertname: "High"},
	} {
		mismatches, err := evalRuleTest(groups, ruleTest{Interval: model1m, InputSeries: series, AlertRuleTests: []alertTestCase{bad}}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(mismatches) != 1 {
			t.Errorf("a wrong expectation passed: %+v", bad)
		}
	}
}
