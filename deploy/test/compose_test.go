package deploytest

import (
	"bufio"
	"context"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

var composeFile = repoPath("docker-compose.yml")

// loadCompose loads docker-compose.yml with the compose specification's
// loader (schema validation, interpolation, normalisation) using envFile for
// interpolation, every profile enabled, and none of this process's environment.
func loadCompose(t *testing.T, envFile string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory(repoRoot),
		cli.WithEnvFiles(envFile),
		cli.WithDotEnv,
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func TestCompose(t *testing.T) {
	p, err := loadCompose(t, repoPath(".env.example"))
	if err != nil {
		t.Fatalf("docker-compose.yml with .env.example: %v", err)
	}
	wantServices := []string{"grafana", "ingester", "prometheus", "redis", "redis-exporter", "signal-cli-rest-api", "worker"}
	if got := p.ServiceNames(); !slices.Equal(sortedStrings(got), wantServices) {
		t.Fatalf("services %v, want %v", got, wantServices)
	}
	for _, name := range wantServices {
		s, _ := p.GetService(name)
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
			t.Errorf("%s: no health check", name)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: bind mount source %s: %v", name, v.Source, err)
				}
			}
		}
	}
	for _, name := range []string{"prometheus", "grafana", "redis-exporter"} {
		if s, _ := p.GetService(name); !slices.Equal(s.Profiles, []string{"monitoring"}) {
			t.Errorf("%s: profiles %v, want [monitoring] so the core stack stays small", name, s.Profiles)
		}
	}

	redis, _ := p.GetService("redis")
	cmd := strings.Join(redis.Command, " ")
	if !strings.Contains(cmd, "--appendonly yes") || !strings.Contains(cmd, "--maxmemory-policy noeviction") || strings.Contains(cmd, "--port") {
		t.Errorf("redis command %q: want AOF, noeviction and the default port", cmd)
	}
	api, _ := p.GetService("signal-cli-rest-api")
	if mode := api.Environment["MODE"]; mode == nil || *mode != "json-rpc" {
		t.Errorf("signal-cli-rest-api MODE %v, want json-rpc", mode)
	}
	apiPort := uint32(0)
	for _, port := range api.Ports {
		apiPort = port.Target
		if port.HostIP != "127.0.0.1" {
			t.Errorf("signal-cli-rest-api published on %q: it has no authentication, publish on loopback only", port.HostIP)
		}
	}
	if !slices.ContainsFunc(api.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/home/.local/share/signal-cli" }) {
		t.Error("signal-cli-rest-api has no config volume")
	}

	scrapePorts := prometheusScrapePorts(t)
	known := settings(t)
	for name, replicas := range map[string]int{"ingester": 2, "worker": 3} {
		s, _ := p.GetService(name)
		if s.GetScale() != replicas {
			t.Errorf("%s: %d replicas, want %d", name, s.GetScale(), replicas)
		}
		if !slices.Equal([]string(s.Command), []string{name}) {
			t.Errorf("%s: command %v", name, s.Command)
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			if v == nil {
				t.Errorf("%s: %s has no value", name, k)
				continue
			}
			if !known[k] {
				t.Errorf("%s: %s is not a setting the binaries accept", name, k)
			}
			env[k] = *v
		}
		acceptConfig(t, name, env)
		// Ports: the probe reads HEALTH_PORT itself; Prometheus scrapes METRICS_PORT.
		if !slices.Equal([]string(s.HealthCheck.Test), []string{"CMD", "/usr/local/bin/healthcheck"}) {
			t.Errorf("%s: health check %v", name, s.HealthCheck.Test)
		}
		if env["METRICS_PORT"] == "" || scrapePorts[name] != env["METRICS_PORT"] {
			t.Errorf("%s: METRICS_PORT %q, Prometheus scrapes port %q", name, env["METRICS_PORT"], scrapePorts[name])
		}
		if env["HEALTH_PORT"] == env["METRICS_PORT"] {
			t.Errorf("%s: HEALTH_PORT equals METRICS_PORT", name)
		}
		api, _ := url.Parse(env["SIGNAL_API_URL"])
		if api == nil || api.Hostname() != "signal-cli-rest-api" || api.Port() != strconv.Itoa(int(apiPort)) {
			t.Errorf("%s: SIGNAL_API_URL %q does not reach signal-cli-rest-api on its container port %d", name, env["SIGNAL_API_URL"], apiPort)
		}
		ru, _ := url.Parse(env["REDIS_URL"])
		if ru == nil || ru.Hostname() != "redis" || ru.Port() != "6379" {
			t.Errorf("%s: REDIS_URL %q does not reach the redis service", name, env["REDIS_URL"])
		}
		// Hardening and drain.
		if !s.ReadOnly || s.User != "65532:65532" || !slices.Equal(s.CapDrop, []string{"ALL"}) || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: read_only %v user %q cap_drop %v security_opt %v", name, s.ReadOnly, s.User, s.CapDrop, s.SecurityOpt)
		}
		shutdown, err := time.ParseDuration(env["SHUTDOWN_TIMEOUT"])
		if err != nil || s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= shutdown {
			t.Errorf("%s: stop_grace_period %v not above SHUTDOWN_TIMEOUT %q", name, s.StopGracePeriod, env["SHUTDOWN_TIMEOUT"])
		}
		for _, dep := range []string{"redis", "signal-cli-rest-api"} {
			if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: does not wait for %s to be healthy", name, dep)
			}
		}
	}
}

// TestComposeEnvExample: every variable .env.example sets is used by the
// compose file, and every variable the file requires is in .env.example.
func TestComposeEnvExample(t *testing.T) {
	compose, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(repoPath(".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf(".env.example: %q is not NAME=value", line)
			continue
		}
		set[k] = true
		if !strings.Contains(string(compose), "${"+k) {
			t.Errorf(".env.example sets %s, which docker-compose.yml does not use", k)
		}
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+):\?`).FindAllStringSubmatch(string(compose), -1) {
		if !set[m[1]] {
			t.Errorf("docker-compose.yml requires %s, which .env.example does not set", m[1])
		}
	}
	// Without the required phone number the stack refuses to start, saying why.
	empty := t.TempDir() + "/empty.env"
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCompose(t, empty); err == nil || !strings.Contains(err.Error(), "set SIGNAL_PHONE_NUMBER in .env") {
		t.Errorf("loading without SIGNAL_PHONE_NUMBER: %v", err)
	}
}

// prometheusScrapePorts returns the port Prometheus scrapes each compose service on.
func prometheusScrapePorts(t *testing.T) map[string]string {
	b, err := os.ReadFile(repoPath("deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName      string `json:"job_name"`
			DNSSDConfigs []struct {
				Names []string `json:"names"`
				Port  int      `json:"port"`
			} `json:"dns_sd_configs"`
			RelabelConfigs []struct {
				TargetLabel string `json:"target_label"`
				Replacement string `json:"replacement"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.RuleFiles, []string{"/etc/prometheus/alerts.yaml"}) {
		t.Errorf("rule_files %v", cfg.RuleFiles)
	}
	out := map[string]string{}
	for _, sc := range cfg.ScrapeConfigs {
		labels := map[string]string{}
		for _, r := range sc.RelabelConfigs {
			labels[r.TargetLabel] = r.Replacement
		}
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				out[n] = strconv.Itoa(d.Port)
				if labels["component"] != n || labels["deployment"] == "" {
					t.Errorf("job %s: target labels %v, want component=%s and a deployment (the alerts select by them)", sc.JobName, labels, n)
				}
			}
		}
	}
	return out
}

func sortedStrings(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
