// Package monitoring tests manifests/components/monitoring with Prometheus's own code: the
// rule file through its rule-file parser (model/rulefmt), every alert through its rule
// evaluation and PromQL engine (rules, promql) over samples scraped from the real webhook
// binary, and the component's objects through the Prometheus Operator's API types.
//
// It is a Go module of its own: github.com/prometheus/prometheus would raise the main
// module's client_golang, golang.org/x/net, k8s.io/utils, k8s.io/kube-openapi and some
// twenty other modules, and with them what the webhook binary is built from. Run it with
// `make test-monitoring` (make test does).
package monitoring
