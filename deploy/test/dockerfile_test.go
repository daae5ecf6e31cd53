package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDockerfile checks what can be checked without a Docker engine: the image
// builds every binary the chart and the compose file run, from packages that
// exist and that .dockerignore keeps in the build context, as the user the
// chart and the compose file expect.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(repoPath("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	build := regexp.MustCompile(`(?s)go build .*?-o /out/ ((?:\./[a-z/-]+ ?)+)`).FindStringSubmatch(df)
	if build == nil {
		t.Fatal("Dockerfile: no `go build ... -o /out/ <packages>` step")
	}
	pkgs := strings.Fields(build[1])
	var bins []string
	for _, p := range pkgs {
		bins = append(bins, filepath.Base(p))
		if _, err := os.Stat(repoPath(p, "main.go")); err != nil {
			t.Errorf("Dockerfile builds %s, which has no main.go: %v", p, err)
		}
	}
	for _, want := range []string{"ingester", "worker", "dlqctl", "healthcheck"} {
		if !slices.Contains(bins, want) {
			t.Errorf("the image lacks %s (built: %v)", want, bins)
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "internal/version.Version=${VERSION}",
		"FROM gcr.io/distroless/static-debian12:nonroot", "USER 65532:65532", "COPY --from=build /out/ /usr/local/bin/",
		"org.opencontainers.image.version", "org.opencontainers.image.revision", "org.opencontainers.image.source"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	vals := readValues(t, "default-values.yaml")
	r := mustRender(t, vals)
	for comp, pt := range podSpecs(t, r) {
		if u := pt.Spec.SecurityContext.RunAsUser; u == nil || *u != 65532 {
			t.Errorf("%s: runAsUser %v, the image's user is 65532", comp, u)
		}
	}
	// .dockerignore must not drop what the build needs.
	ig, err := os.ReadFile(repoPath(".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	need := []string{"go.mod", "go.sum", "internal/config/settings.go"}
	for _, p := range pkgs {
		need = append(need, strings.TrimPrefix(p, "./")+"/main.go")
	}
	for _, line := range strings.Split(string(ig), "\n") {
		pat := strings.TrimSpace(line)
		if pat == "" || strings.HasPrefix(pat, "#") {
			continue
		}
		pat = strings.TrimSuffix(strings.TrimPrefix(pat, "/"), "/")
		for _, n := range need {
			if ok, _ := filepath.Match(pat, n); ok || strings.HasPrefix(n, pat+"/") {
				t.Errorf(".dockerignore %q excludes %s, which the build needs", line, n)
			}
		}
	}
}
