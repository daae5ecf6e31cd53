package deploytest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

var ciValueFiles = []string{"default-values.yaml", "keda-values.yaml", "hpa-values.yaml", "existing-secret-values.yaml", "netpol-values.yaml"}

// TestChartLint runs Helm's linter (chart file, values against the schema,
// templates, YAML of every rendered document) over every ci/ value set; any
// warning fails, as with `helm lint --strict`.
func TestChartLint(t *testing.T) {
	for _, f := range ciValueFiles {
		t.Run(f, func(t *testing.T) {
			res := lint.RunAll(chartDir, readValues(t, f), releaseNS)
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("lint: %s", m)
				}
			}
		})
	}
}

// TestChartRender renders every ci/ value set; renderValues decodes every object
// strictly (typed Kubernetes objects, custom resources against testdata/crds), and
// each case asserts what the value set is for.
func TestChartRender(t *testing.T) {
	for _, tc := range []struct {
		file  string
		check func(t *testing.T, r rendered)
	}{
		{"default-values.yaml", checkDefaults},
		{"keda-values.yaml", checkKEDA},
		{"hpa-values.yaml", checkHPA},
		{"existing-secret-values.yaml", checkExistingSecret},
		{"netpol-values.yaml", checkNetpolAndSpool},
	} {
		t.Run(tc.file, func(t *testing.T) {
			vals := readValues(t, tc.file)
			r := mustRender(t, vals)
			checkCommon(t, r, vals)
			tc.check(t, r)
		})
	}
}

func configMap(t *testing.T, r rendered) map[string]string {
	return r.get(t, "ConfigMap", fullname).Typed.(*corev1.ConfigMap).Data
}

// podSpecs returns the pod templates of the ingester and the worker.
func podSpecs(t *testing.T, r rendered) map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, o := range r.Objects {
		switch v := o.Typed.(type) {
		case *appsv1.Deployment:
			out[v.Spec.Template.Labels["app.kubernetes.io/component"]] = &v.Spec.Template
		case *appsv1.StatefulSet:
			out[v.Spec.Template.Labels["app.kubernetes.io/component"]] = &v.Spec.Template
		}
	}
	if out["ingester"] == nil || out["worker"] == nil || len(out) != 2 {
		t.Fatalf("want one ingester and one worker workload, have %v", sortedKeys(out))
	}
	return out
}

// checkCommon asserts what holds for every value set: probes, ports, grace
// periods, security contexts, budgets, the test hook, and that the binaries
// accept the configuration the pods get.
func checkCommon(t *testing.T, r rendered, vals map[string]any) {
	cm := configMap(t, r)
	shutdown, err := time.ParseDuration(cm["SHUTDOWN_TIMEOUT"])
	if err != nil {
		t.Fatalf("SHUTDOWN_TIMEOUT %q: %v", cm["SHUTDOWN_TIMEOUT"], err)
	}
	health, _ := strconv.Atoi(cm["HEALTH_PORT"])
	metricsPort, _ := strconv.Atoi(cm["METRICS_PORT"])
	if health == 0 || metricsPort == 0 || health == metricsPort {
		t.Fatalf("HEALTH_PORT %q METRICS_PORT %q", cm["HEALTH_PORT"], cm["METRICS_PORT"])
	}
	for comp, pt := range podSpecs(t, r) {
		ps := pt.Spec
		if ps.TerminationGracePeriodSeconds == nil || time.Duration(*ps.TerminationGracePeriodSeconds)*time.Second < shutdown+5*time.Second {
			t.Errorf("%s: terminationGracePeriodSeconds %v not above SHUTDOWN_TIMEOUT %v + 5s", comp, ps.TerminationGracePeriodSeconds, shutdown)
		}
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken must be false", comp)
		}
		psc := ps.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod security context %+v", comp, psc)
		}
		if len(ps.Containers) != 1 {
			t.Fatalf("%s: %d containers", comp, len(ps.Containers))
		}
		c := ps.Containers[0]
		if want := "/usr/local/bin/" + comp; len(c.Command) != 1 || c.Command[0] != want {
			t.Errorf("%s: command %v, want [%s]", comp, c.Command, want)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
			t.Errorf("%s: container security context %+v", comp, sc)
		}
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		if ports["health"] != int32(health) || ports["metrics"] != int32(metricsPort) {
			t.Errorf("%s: container ports %v, want health %d metrics %d", comp, ports, health, metricsPort)
		}
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{{"liveness", c.LivenessProbe, "/live"}, {"readiness", c.ReadinessProbe, "/ready"}, {"startup", c.StartupProbe, "/live"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s: no %s probe", comp, p.name)
				continue
			}
			if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.StrVal != "health" {
				t.Errorf("%s: %s probe %s on %v, want %s on health", comp, p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port, p.path)
			}
		}
		if pt.Annotations["checksum/config"] == "" {
			t.Errorf("%s: no checksum/config annotation: config changes would not roll the pods", comp)
		}
		// The metrics Service targets the named port the container exposes.
		svc := r.get(t, "Service", fullname+"-"+comp+"-metrics").Typed.(*corev1.Service)
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.StrVal != "metrics" || svc.Spec.Ports[0].Port != int32(metricsPort) {
			t.Errorf("%s: metrics service ports %+v", comp, svc.Spec.Ports)
		}
		for k, v := range svc.Spec.Selector {
			if pt.Labels[k] != v {
				t.Errorf("%s: service selector %s=%s does not match the pods", comp, k, v)
			}
		}
		// PDBs never block a node drain while every pod is unready.
		pdb := r.get(t, "PodDisruptionBudget", fullname+"-"+comp).Typed.(*policyv1.PodDisruptionBudget)
		if pdb.Spec.UnhealthyPodEvictionPolicy == nil || *pdb.Spec.UnhealthyPodEvictionPolicy != policyv1.AlwaysAllow {
			t.Errorf("%s: PDB unhealthyPodEvictionPolicy %v, want AlwaysAllow", comp, pdb.Spec.UnhealthyPodEvictionPolicy)
		}
		acceptConfig(t, comp, podEnv(t, r, pt))
	}
	// The helm test hook.
	pod := r.get(t, "Pod", fullname+"-selftest")
	p := pod.Typed.(*corev1.Pod)
	if p.Annotations["helm.sh/hook"] != "test" || p.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("selftest pod: annotations %v restartPolicy %s", p.Annotations, p.Spec.RestartPolicy)
	}
	script, _ := os.ReadFile(filepath.Join(chartDir, "files", "selftest.sh"))
	if len(p.Spec.Containers) != 1 || len(p.Spec.Containers[0].Command) != 3 || p.Spec.Containers[0].Command[2] != string(script) {
		t.Errorf("selftest pod does not run files/selftest.sh")
	}
	if !strings.Contains(r.Notes, "helm test "+releaseName) {
		t.Errorf("NOTES.txt does not mention helm test:\n%s", r.Notes)
	}
}

// podEnv is the environment a container of pt sees: the ConfigMap plus its env,
// with every mounted file (secrets, TLS) written to a temporary directory.
func podEnv(t *testing.T, r rendered, pt *corev1.PodTemplateSpec) map[string]string {
	env := map[string]string{}
	for k, v := range configMap(t, r) {
		env[k] = v
	}
	dir := t.TempDir()
	ca, cert, key := testCerts(t)
	for _, e := range pt.Spec.Containers[0].Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = "bot-signal-client-worker-7d9c-x2v4q"
		case e.ValueFrom != nil:
			t.Fatalf("env %s: unexpected valueFrom %+v", e.Name, e.ValueFrom)
		default:
			env[e.Name] = e.Value
		}
	}
	for k, v := range env {
		if !strings.HasPrefix(v, "/etc/signal-client/") {
			continue
		}
		content := "0123456789abcdef0123456789abcdef"
		switch k {
		case "REDIS_TLS_CA_FILE":
			content = ca
		case "REDIS_TLS_CERT_FILE":
			content = cert
		case "REDIS_TLS_KEY_FILE":
			content = key
		}
		p := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(v, "/etc/signal-client/"), "/", "_"))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		env[k] = p
	}
	return env
}

func checkDefaults(t *testing.T, r rendered) {
	ing := r.get(t, "Deployment", fullname+"-ingester").Typed.(*appsv1.Deployment)
	if ing.Spec.Replicas == nil || *ing.Spec.Replicas != 2 {
		t.Errorf("ingester replicas %v, want 2", ing.Spec.Replicas)
	}
	if ru := ing.Spec.Strategy.RollingUpdate; ing.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.IntValue() != 1 {
		t.Errorf("ingester strategy %+v: a rollout must never take a replica down before its successor is ready", ing.Spec.Strategy)
	}
	wk := r.get(t, "Deployment", fullname+"-worker").Typed.(*appsv1.Deployment)
	if wk.Spec.Replicas == nil || *wk.Spec.Replicas != 3 {
		t.Errorf("worker replicas %v, want 3", wk.Spec.Replicas)
	}
	for _, d := range []*appsv1.Deployment{ing, wk} {
		aff := d.Spec.Template.Spec.Affinity
		if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
			t.Errorf("%s: no default soft anti-affinity: %+v", d.Name, aff)
		}
	}
	for _, kind := range []string{"Secret", "HorizontalPodAutoscaler", "ScaledObject", "NetworkPolicy", "ServiceMonitor", "PrometheusRule", "StatefulSet"} {
		if got := r.all(kind); len(got) != 0 {
			t.Errorf("defaults render a %s", kind)
		}
	}
	if pdb := r.get(t, "PodDisruptionBudget", fullname+"-ingester").Typed.(*policyv1.PodDisruptionBudget); pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("ingester PDB minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
	cm := configMap(t, r)
	for k, want := range map[string]string{"SIGNAL_PHONE_NUMBER": "+15551234567", "REDIS_URL": "redis://redis-master:6379/0",
		"WORKER_SHARD_COUNT": "64", "SHUTDOWN_TIMEOUT": "25s", "HEALTH_PORT": "8082", "METRICS_PORT": "8000", "LOG_FORMAT": "json"} {
		if cm[k] != want {
			t.Errorf("ConfigMap %s=%q, want %q", k, cm[k], want)
		}
	}
	for _, k := range []string{"REDIS_PASSWORD", "REDIS_PASSWORD_FILE", "SIGNAL_API_TOKEN", "LOG_REDACTION_KEY"} {
		if _, ok := cm[k]; ok {
			t.Errorf("ConfigMap holds %s", k)
		}
	}
}

func checkKEDA(t *testing.T, r rendered) {
	wk := r.get(t, "Deployment", fullname+"-worker").Typed.(*appsv1.Deployment)
	if wk.Spec.Replicas != nil {
		t.Errorf("worker renders replicas %d while KEDA owns the scale", *wk.Spec.Replicas)
	}
	so := r.get(t, "ScaledObject", fullname+"-worker")
	var spec struct {
		Spec struct {
			ScaleTargetRef                   struct{ APIVersion, Kind, Name string }
			MinReplicaCount, MaxReplicaCount int
			Fallback                         struct{ FailureThreshold, Replicas int }
			Triggers                         []struct {
				Type       string
				MetricType string
				Metadata   map[string]string
			}
		}
	}
	if err := json.Unmarshal(so.JSON, &spec); err != nil {
		t.Fatal(err)
	}
	s := spec.Spec
	if s.ScaleTargetRef.Kind != "Deployment" || s.ScaleTargetRef.Name != wk.Name || s.ScaleTargetRef.APIVersion != "apps/v1" {
		t.Errorf("scaleTargetRef %+v, want the worker Deployment %s", s.ScaleTargetRef, wk.Name)
	}
	if s.MinReplicaCount != 2 || s.MaxReplicaCount != 32 {
		t.Errorf("replica counts %d..%d, want 2..32 (capped at shardCount 32)", s.MinReplicaCount, s.MaxReplicaCount)
	}
	if len(s.Triggers) != 1 {
		t.Fatalf("%d triggers, want exactly one on the summed lag (the HPA takes the maximum over triggers)", len(s.Triggers))
	}
	tr := s.Triggers[0]
	wantQuery := `sum(signal_client_shard_lag{namespace="signal",deployment="bot-signal-client"})`
	if tr.Type != "prometheus" || tr.MetricType != "AverageValue" || tr.Metadata["query"] != wantQuery ||
		tr.Metadata["threshold"] != "200" || tr.Metadata["serverAddress"] != "http://prometheus-operated.monitoring.svc:9090" {
		t.Errorf("trigger %+v, want prometheus AverageValue on %s with threshold 200", tr, wantQuery)
	}
	// KEDA only supports fallback with AverageValue triggers.
	if s.Fallback.Replicas == 0 || tr.MetricType != "AverageValue" {
		t.Errorf("fallback %+v with metricType %s", s.Fallback, tr.MetricType)
	}
	if pdb := r.get(t, "PodDisruptionBudget", fullname+"-worker").Typed.(*policyv1.PodDisruptionBudget); pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("worker PDB under KEDA: %+v", pdb.Spec)
	}
	// Monitoring objects: the ServiceMonitor sets the labels the alerts and the query use.
	sm := r.get(t, "ServiceMonitor", fullname)
	for _, want := range []string{`"targetLabel":"deployment"`, `"replacement":"bot-signal-client"`, `"targetLabel":"component"`, `"release":"kube-prometheus-stack"`} {
		if !bytes.Contains(sm.JSON, []byte(want)) {
			t.Errorf("ServiceMonitor lacks %s: %s", want, sm.JSON)
		}
	}
	checkPrometheusRule(t, r)
	dash := r.get(t, "ConfigMap", fullname+"-dashboards").Typed.(*corev1.ConfigMap)
	if dash.Labels["grafana_dashboard"] != "1" || len(dash.Data) == 0 {
		t.Errorf("dashboard ConfigMap labels %v, %d files", dash.Labels, len(dash.Data))
	}
	for name, content := range dash.Data {
		want, _ := os.ReadFile(repoPath("deploy", "grafana", name))
		if content != strings.TrimRight(string(want), "\n") {
			t.Errorf("dashboard ConfigMap %s differs from deploy/grafana/%s", name, name)
		}
	}
	sec := r.get(t, "Secret", fullname).Typed.(*corev1.Secret)
	if keysOf(bytesKeys(sec.Data)) != "log-redaction-key,redis-password" {
		t.Errorf("Secret keys %s", keysOf(bytesKeys(sec.Data)))
	}
}

func bytesKeys(m map[string][]byte) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func checkPrometheusRule(t *testing.T, r rendered) {
	pr := r.get(t, "PrometheusRule", fullname)
	var spec struct {
		Spec struct {
			Groups []ruleGroup `json:"groups"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(pr.JSON, &spec); err != nil {
		t.Fatal(err)
	}
	file := loadRuleFile(t, repoPath("deploy", "prometheus", "alerts.yaml"))
	want := map[string]bool{"SignalClientShardsUnowned": true}
	for _, g := range file.Groups {
		for _, rl := range g.Rules {
			want[rl.Alert] = true
		}
	}
	got := map[string]bool{}
	for _, g := range spec.Spec.Groups {
		for _, rl := range g.Rules {
			got[rl.Alert] = true
			if rl.Labels["team"] != "bots" || rl.Labels["severity"] == "" {
				t.Errorf("%s: labels %v, want severity and the alertLabels team=bots", rl.Alert, rl.Labels)
			}
		}
	}
	if keysOf(boolKeys(got)) != keysOf(boolKeys(want)) {
		t.Errorf("PrometheusRule alerts %s, want %s", keysOf(boolKeys(got)), keysOf(boolKeys(want)))
	}
	// The chart-only alert, evaluated: 28 of 32 shards owned for 5 minutes fires.
	var unowned []ruleGroup
	for _, g := range spec.Spec.Groups {
		if g.Name == "signal-client.shards" {
			unowned = append(unowned, g)
		}
	}
	runRuleTest(t, unowned, ruleTest{
		Interval: model1m, InputSeries: []inputSeries{
			{Series: `signal_client_shards_owned{namespace="signal",deployment="bot-signal-client",component="worker",instance="w1"}`, Values: "16x20"},
			{Series: `signal_client_shards_owned{namespace="signal",deployment="bot-signal-client",component="worker",instance="w2"}`, Values: "16x5 12x15"},
		},
		AlertRuleTests: []alertTestCase{
			{EvalTime: pdur(5 * time.Minute), Alertname: "SignalClientShardsUnowned"},
			{EvalTime: pdur(12 * time.Minute), Alertname: "SignalClientShardsUnowned", ExpAlerts: []expAlert{{
				ExpLabels: map[string]string{"severity": "critical", "team": "bots", "namespace": "signal", "deployment": "bot-signal-client"},
				ExpAnnotations: map[string]string{
					"summary":     "Some shards have no worker.",
					"description": "bot-signal-client: workers own 28 of 32 shards for 5 minutes; the conversations of the others are not handled.",
					"runbook_url": "https://github.com/signal-client/signal-client/blob/main/docs/deploy.md#signalclientshardsunowned",
				}}}},
		},
	}, time.Minute)
}

func boolKeys(m map[string]bool) map[string]string {
	out := map[string]string{}
	for k := range m {
		out[k] = ""
	}
	return out
}

func checkHPA(t *testing.T, r rendered) {
	wk := r.get(t, "Deployment", fullname+"-worker").Typed.(*appsv1.Deployment)
	if wk.Spec.Replicas != nil {
		t.Errorf("worker renders replicas %d while the HPA owns the scale", *wk.Spec.Replicas)
	}
	hpa := r.get(t, "HorizontalPodAutoscaler", fullname+"-worker").Typed.(*autoscalingv2.HorizontalPodAutoscaler)
	if hpa.Spec.ScaleTargetRef.Name != wk.Name || hpa.Spec.MaxReplicas != 12 || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 2 {
		t.Errorf("HPA %+v", hpa.Spec)
	}
	if len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Type != autoscalingv2.ExternalMetricSourceType {
		t.Fatalf("HPA metrics %+v, want one External metric", hpa.Spec.Metrics)
	}
	ext := hpa.Spec.Metrics[0].External
	if ext.Metric.Name != "signal_client_shard_lag_sum" || ext.Target.Type != autoscalingv2.AverageValueMetricType || ext.Target.AverageValue.String() != "100" ||
		ext.Metric.Selector.MatchLabels["deployment"] != fullname || ext.Metric.Selector.MatchLabels["namespace"] != releaseNS {
		t.Errorf("external metric %+v target %+v", ext.Metric, ext.Target)
	}
	if len(r.all("ScaledObject")) != 0 {
		t.Error("HPA value set renders a ScaledObject")
	}
}

func checkExistingSecret(t *testing.T, r rendered) {
	if len(r.all("Secret")) != 0 {
		t.Errorf("existingSecret set, yet the chart renders its own Secret")
	}
	cm := configMap(t, r)
	for k, want := range map[string]string{"REDIS_URL": "rediss://redis.internal:6380/0", "REDIS_USERNAME": "signal-client",
		"REDIS_TLS_CA_FILE": "/etc/signal-client/redis-tls/ca.crt", "REDIS_TLS_CERT_FILE": "/etc/signal-client/redis-tls/tls.crt",
		"REDIS_TLS_KEY_FILE": "/etc/signal-client/redis-tls/tls.key", "REDIS_TLS_SERVER_NAME": "redis.internal"} {
		if cm[k] != want {
			t.Errorf("ConfigMap %s=%q, want %q", k, cm[k], want)
		}
	}
	for comp, pt := range podSpecs(t, r) {
		vols := map[string]*corev1.SecretVolumeSource{}
		for _, v := range pt.Spec.Volumes {
			if v.Secret != nil {
				vols[v.Name] = v.Secret
			}
		}
		sec := vols["secrets"]
		if sec == nil || sec.SecretName != "signal-client-credentials" || len(sec.Items) != 3 {
			t.Fatalf("%s: secrets volume %+v", comp, sec)
		}
		if tls := vols["redis-tls"]; tls == nil || tls.SecretName != "redis-tls" || len(tls.Items) != 3 {
			t.Errorf("%s: redis-tls volume %+v", comp, tls)
		}
		env := map[string]string{}
		for _, e := range pt.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		for k, want := range map[string]string{"REDIS_PASSWORD_FILE": "/etc/signal-client/secrets/redis-password",
			"SIGNAL_API_TOKEN_FILE": "/etc/signal-client/secrets/api-token", "LOG_REDACTION_KEY_FILE": "/etc/signal-client/secrets/log-key"} {
			if env[k] != want {
				t.Errorf("%s: %s=%q, want %q", comp, k, env[k], want)
			}
		}
	}
}

func checkNetpolAndSpool(t *testing.T, r rendered) {
	if r.has("Deployment", fullname+"-ingester") {
		t.Error("spool on, yet the ingester is a Deployment")
	}
	sts := r.get(t, "StatefulSet", fullname+"-ingester").Typed.(*appsv1.StatefulSet)
	if *sts.Spec.Replicas != 3 || sts.Spec.ServiceName != fullname+"-ingester-headless" || len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "spool" {
		t.Errorf("ingester StatefulSet %+v", sts.Spec)
	}
	r.get(t, "Service", fullname+"-ingester-headless")
	c := sts.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || (m.Name == "spool" && m.MountPath == env["SPOOL_DIR"])
	}
	if env["DURABLE_QUEUE_ENABLED"] != "true" || !mounted {
		t.Errorf("spool env %v mounts %+v", env, c.VolumeMounts)
	}
	pols := r.all("NetworkPolicy")
	if len(pols) != 2 {
		t.Fatalf("%d NetworkPolicies, want one per component", len(pols))
	}
	for _, o := range pols {
		np := o.Typed.(*networkingv1.NetworkPolicy)
		if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port.StrVal != "metrics" || len(np.Spec.Ingress[0].From) != 1 {
			t.Errorf("%s: ingress %+v, want only the metrics port from the monitoring namespace", np.Name, np.Spec.Ingress)
		}
		ports := map[int]bool{}
		for _, e := range np.Spec.Egress {
			for _, p := range e.Ports {
				ports[p.Port.IntValue()] = true
			}
		}
		if len(ports) != 4 || !ports[53] || !ports[6379] || !ports[26379] || !ports[8080] {
			t.Errorf("%s: egress ports %v, want DNS, Redis (6379, 26379) and the REST API (8080)", np.Name, ports)
		}
	}
	cm := configMap(t, r)
	if cm["LOG_LEVEL"] != "debug" || cm["WORKER_POOL_SIZE"] != "32" || cm["HEARTBEAT_INTERVAL"] != "2s" {
		t.Errorf("config passthrough: %v", cm)
	}
}

// TestChartRefusals: wrong values fail at install, through the schema or a
// template check, with a message that names the problem.
func TestChartRefusals(t *testing.T) {
	base := readValues(t, "default-values.yaml")
	for _, tc := range []struct {
		name    string
		over    string
		wantErr string
	}{
		{"misspelt key", "worker: {replicas: 3}", "additional properties 'replicas' not allowed"},
		{"misspelt top-level key", "shardcount: 8", "additional properties 'shardcount' not allowed"},
		{"replicas as a string", `worker: {replicaCount: "3"}`, "got string, want integer"},
		{"zero shards", "shardCount: 0", "minimum"},
		{"too many shards", "shardCount: 5000", "maximum"},
		{"phone number not E.164", `signal: {phoneNumber: "015551234567"}`, "does not match pattern"},
		{"password inside the Redis URL", "redis: {url: 'redis://user:hunter2@redis:6379/0'}", "at '/redis/url': 'not' failed"},
		{"not a Redis URL", "redis: {url: 'http://redis:6379'}", "does not match pattern"},
		{"short log redaction key", "logRedactionKey: short", "minLength"},
		{"managed setting in config", "config: {REDIS_URL: 'redis://x:6379'}", "invalid propertyName 'REDIS_URL'"},
		{"lower-case setting in config", "config: {log_level: debug}", "does not match pattern"},
		{"unknown anti-affinity preset", "worker: {podAntiAffinityPreset: always}", "podAntiAffinityPreset"},
		{"KEDA to zero", "worker: {keda: {enabled: true, minReplicaCount: 0, prometheus: {serverAddress: 'http://p:9090'}}}", "minimum"},
		{"both autoscalers", "worker: {keda: {enabled: true, prometheus: {serverAddress: 'http://p:9090'}}, autoscaling: {enabled: true}}", "worker.keda.enabled and worker.autoscaling.enabled are both true"},
		{"KEDA above the shard count", "shardCount: 8\nworker: {keda: {enabled: true, maxReplicaCount: 9, prometheus: {serverAddress: 'http://p:9090'}}}", "worker.keda.maxReplicaCount (9) exceeds shardCount (8)"},
		{"HPA above the shard count", "shardCount: 8\nworker: {autoscaling: {enabled: true, maxReplicas: 10}}", "worker.autoscaling.maxReplicas (10) exceeds shardCount (8)"},
		{"fixed replicas above the shard count", "shardCount: 2\nworker: {replicaCount: 3}", "worker.replicaCount (3) exceeds shardCount (2)"},
		{"KEDA without Prometheus", "worker: {keda: {enabled: true}}", "worker.keda.prometheus.serverAddress is empty"},
		{"grace period too short", "worker: {terminationGracePeriodSeconds: 28}", "worker.terminationGracePeriodSeconds (28) must exceed shutdownTimeoutSeconds (25) by at least 5 s"},
		{"same port twice", "ports: {health: 8000, metrics: 8000}", "ports.health and ports.metrics are both 8000"},
		{"TLS without rediss", "redis: {tls: {enabled: true, existingSecret: tls}}", "redis.tls.enabled needs a rediss:// redis.url"},
		{"half of mutual TLS", "redis: {url: 'rediss://r:6380', tls: {enabled: true, existingSecret: tls, certKey: tls.crt}}", "redis.tls.certKey and redis.tls.keyKey go together"},
		{"no phone number", `signal: {phoneNumber: ""}`, "signal.phoneNumber is required"},
		{"no Redis", `redis: {url: ""}`, "redis.url is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var over map[string]any
			if err := yaml.Unmarshal([]byte(tc.over), &over); err != nil {
				t.Fatal(err)
			}
			_, err := renderValues(t, merge(base, over))
			if err == nil {
				t.Fatalf("rendered; want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q\ndoes not contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestChartVariations covers switches the ci/ files leave alone.
func TestChartVariations(t *testing.T) {
	base := readValues(t, "default-values.yaml")
	t.Run("chart secret only holds what is set", func(t *testing.T) {
		r := mustRender(t, merge(base, map[string]any{"signal": map[string]any{"apiToken": "tok"}}))
		sec := r.get(t, "Secret", fullname).Typed.(*corev1.Secret)
		if keysOf(bytesKeys(sec.Data)) != "signal-api-token" || string(sec.Data["signal-api-token"]) != "tok" {
			t.Errorf("Secret data %v", sec.Data)
		}
	})
	t.Run("spool without persistence uses an emptyDir", func(t *testing.T) {
		r := mustRender(t, merge(base, map[string]any{"ingester": map[string]any{"spool": map[string]any{"enabled": true, "persistence": map[string]any{"enabled": false}}}}))
		sts := r.get(t, "StatefulSet", fullname+"-ingester").Typed.(*appsv1.StatefulSet)
		found := false
		for _, v := range sts.Spec.Template.Spec.Volumes {
			found = found || (v.Name == "spool" && v.EmptyDir != nil)
		}
		if len(sts.Spec.VolumeClaimTemplates) != 0 || !found {
			t.Errorf("claims %d, emptyDir spool %v", len(sts.Spec.VolumeClaimTemplates), found)
		}
	})
	t.Run("disabled alerts and hard anti-affinity", func(t *testing.T) {
		r := mustRender(t, merge(base, map[string]any{
			"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true, "disabledAlerts": []any{"SignalClientLeaseChurn", "SignalClientShardsUnowned"}}},
			"worker":  map[string]any{"podAntiAffinityPreset": "hard"},
		}))
		pr := r.get(t, "PrometheusRule", fullname)
		if bytes.Contains(pr.JSON, []byte("SignalClientLeaseChurn")) || bytes.Contains(pr.JSON, []byte("SignalClientShardsUnowned")) {
			t.Error("disabled alerts are rendered")
		}
		if !bytes.Contains(pr.JSON, []byte("SignalClientLagGrowing")) {
			t.Error("other alerts are missing")
		}
		wk := r.get(t, "Deployment", fullname+"-worker").Typed.(*appsv1.Deployment)
		if a := wk.Spec.Template.Spec.Affinity; a == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
			t.Errorf("hard anti-affinity: %+v", a)
		}
	})
}
