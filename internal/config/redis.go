package config

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisOptions builds go-redis options: REDIS_URL when set (redis://,
// rediss:// or unix://), else REDIS_HOST:REDIS_PORT. REDIS_USERNAME,
// REDIS_PASSWORD and REDIS_DB override what the URL says when they are set,
// so the password can live in a secret file while the URL stays in plain
// configuration. The TLS files are read here; Load calls this once so that a
// missing file is refused at start.
func (c *Config) RedisOptions() (*redis.Options, error) {
	r := c.Redis
	var o *redis.Options
	if r.URL != "" {
		var err error
		if o, err = redis.ParseURL(r.URL); err != nil {
			e := &Error{Variable: "REDIS_URL", Value: maskURL(r.URL), Source: c.originSource("REDIS_URL"),
				Expected: "a redis://, rediss:// or unix:// URL such as redis://redis:6379/0"}
			// go-redis's reasons ("invalid database number") help, but a
			// reason that quotes the URL would show its password.
			if u, perr := url.Parse(r.URL); perr == nil {
				if pw, ok := u.User.Password(); !ok || !strings.Contains(err.Error(), pw) {
					e.Err = err
				}
			}
			return nil, e
		}
		if strings.HasPrefix(r.URL, "redis://") && r.TLSEnabled && c.explicit("REDIS_TLS_ENABLED") {
			return nil, &Error{Variable: "REDIS_TLS_ENABLED", Value: "true", Source: c.originSource("REDIS_TLS_ENABLED"),
				Expected: "false with a redis:// REDIS_URL (use rediss:// for TLS)"}
		}
	} else {
		o = &redis.Options{Addr: net.JoinHostPort(r.Host, strconv.Itoa(r.Port)), DB: r.DB}
		if r.TLSEnabled {
			o.TLSConfig = &tls.Config{ServerName: r.Host}
		}
	}
	if r.Username != "" {
		o.Username = r.Username
	}
	if r.Password != "" {
		o.Password = r.Password
	}
	if r.URL == "" || c.explicit("REDIS_DB") {
		o.DB = r.DB
	}

	tlsOpts := map[string]bool{
		"REDIS_TLS_CA_FILE":              r.TLSCAFile != "",
		"REDIS_TLS_CERT_FILE":            r.TLSCertFile != "",
		"REDIS_TLS_KEY_FILE":             r.TLSKeyFile != "",
		"REDIS_TLS_INSECURE_SKIP_VERIFY": r.TLSInsecureSkipVerify,
		"REDIS_TLS_SERVER_NAME":          r.TLSServerName != "",
	}
	if o.TLSConfig == nil {
		for _, n := range []string{"REDIS_TLS_CA_FILE", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE", "REDIS_TLS_INSECURE_SKIP_VERIFY", "REDIS_TLS_SERVER_NAME"} {
			if tlsOpts[n] {
				return nil, &Error{Variable: n, Value: c.get(n), Source: c.originSource(n),
					Expected: "unset unless TLS is on (use a rediss:// REDIS_URL or REDIS_TLS_ENABLED=true)"}
			}
		}
		return o, nil
	}

	t := o.TLSConfig
	t.MinVersion = tls.VersionTLS12
	if r.TLSServerName != "" {
		t.ServerName = r.TLSServerName
	}
	t.InsecureSkipVerify = r.TLSInsecureSkipVerify
	if r.TLSCAFile != "" {
		pem, err := os.ReadFile(r.TLSCAFile)
		if err != nil {
			return nil, &Error{Variable: "REDIS_TLS_CA_FILE", Value: r.TLSCAFile, Source: c.originSource("REDIS_TLS_CA_FILE"),
				Expected: "a readable PEM file of CA certificates", Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &Error{Variable: "REDIS_TLS_CA_FILE", Value: r.TLSCAFile, Source: c.originSource("REDIS_TLS_CA_FILE"),
				Expected: "a PEM file of CA certificates (none found in it)"}
		}
		t.RootCAs = pool
	}
	switch {
	case r.TLSCertFile != "" && r.TLSKeyFile == "":
		return nil, &Error{Variable: "REDIS_TLS_KEY_FILE", Unset: true, Expected: "the key of REDIS_TLS_CERT_FILE (set both or neither)"}
	case r.TLSCertFile == "" && r.TLSKeyFile != "":
		return nil, &Error{Variable: "REDIS_TLS_CERT_FILE", Unset: true, Expected: "the certificate of REDIS_TLS_KEY_FILE (set both or neither)"}
	case r.TLSCertFile != "":
		cert, err := tls.LoadX509KeyPair(r.TLSCertFile, r.TLSKeyFile)
		if err != nil {
			return nil, &Error{Variable: "REDIS_TLS_CERT_FILE", Value: r.TLSCertFile, Source: c.originSource("REDIS_TLS_CERT_FILE"),
				Expected: "a PEM certificate matching REDIS_TLS_KEY_FILE", Err: err}
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return o, nil
}

// get is the effective value of a setting as text (unmasked).
func (c *Config) get(name string) string {
	if s := specByName(name); s != nil {
		return s.get(c)
	}
	return ""
}
