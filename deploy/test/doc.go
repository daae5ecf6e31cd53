// Package deploytest checks the deployment artifacts of signal-client without a
// cluster, a Docker engine or the helm binary: it lints and renders the Helm chart
// with the Helm Go library, decodes every rendered object strictly into the
// Kubernetes API types (custom resources against the JSON schemas in
// testdata/crds), validates docker-compose.yml with compose-go, runs the alert
// rules' unit tests through the PromQL engine, and checks the dashboard and the
// alerts against the metric names the built binaries really export.
//
// It is its own Go module so Helm, Kubernetes, compose and Prometheus libraries
// stay out of the main go.mod.
package deploytest
