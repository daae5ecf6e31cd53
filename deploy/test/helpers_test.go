package deploytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"
)

// repoRoot is the repository root (this module lives in deploy/test).
var repoRoot = func() string {
	p, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return p
}()

func repoPath(parts ...string) string { return filepath.Join(append([]string{repoRoot}, parts...)...) }

var chartDir = repoPath("deploy", "helm", "signal-client")

var (
	binOnce sync.Once
	binDir  string
	binErr  error
	tempBin string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tempBin != "" {
		os.RemoveAll(tempBin)
	}
	os.Exit(code)
}

// binaries returns the directory of the built binaries: SIGNAL_CLIENT_BIN (set by
// `make test`), or a temporary directory they are built into once from ../../cmd.
func binaries(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if d := os.Getenv("SIGNAL_CLIENT_BIN"); d != "" {
			binDir = d
			return
		}
		dir, err := os.MkdirTemp("", "signal-client-deploy-bin-*")
		if err != nil {
			binErr = err
			return
		}
		tempBin = dir
		cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
			"./cmd/ingester", "./cmd/worker", "./cmd/dlqctl", "./cmd/signal-emulator")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/... in %s: %v\n%s", repoRoot, err, out)
			return
		}
		binDir = dir
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

var (
	settingsOnce sync.Once
	settingsSet  map[string]bool
	settingsErr  error
)

var envNameRE = regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*)\)`)

// settings returns every environment variable the ingester and the worker accept,
// read from their --help (every flag names its variable), so the deploy files are
// checked against the binaries and not against a copy of the list.
func settings(t testing.TB) map[string]bool {
	t.Helper()
	dir := binaries(t)
	settingsOnce.Do(func() {
		settingsSet = map[string]bool{}
		for _, b := range []string{"ingester", "worker"} {
			out, _ := exec.Command(filepath.Join(dir, b), "--help").CombinedOutput()
			ms := envNameRE.FindAllStringSubmatch(string(out), -1)
			if len(ms) < 40 {
				settingsErr = fmt.Errorf("%s --help lists %d settings, expected the full table:\n%s", b, len(ms), out)
				return
			}
			for _, m := range ms {
				settingsSet[m[1]] = true
			}
		}
	})
	if settingsErr != nil {
		t.Fatal(settingsErr)
	}
	return settingsSet
}

// acceptConfig runs `binary --print-config` with exactly env and fails the test
// when the binary refuses the configuration.
func acceptConfig(t *testing.T, binary string, env map[string]string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), binary), "--print-config")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s --print-config refuses the configuration (%v):\n%s\nenvironment: %v", binary, err, out, sortedKeys(env))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var (
	certsOnce             sync.Once
	certCA, certPEM, keyP string
)

// testCerts returns a PEM CA certificate and a client certificate and key it
// signed, so TLS settings pass the binaries' start-up checks.
func testCerts(t testing.TB) (ca, cert, key string) {
	t.Helper()
	certsOnce.Do(func() {
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		caCert, _ := x509.ParseCertificate(caDER)
		cKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "signal-client"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		cDER, err := x509.CreateCertificate(rand.Reader, cTmpl, caCert, &cKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		kDER, _ := x509.MarshalECPrivateKey(cKey)
		certCA = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
		certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cDER}))
		keyP = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kDER}))
	})
	return certCA, certPEM, keyP
}
