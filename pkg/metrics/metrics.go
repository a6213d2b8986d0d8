// Package metrics declares the process's Prometheus metrics in one line each: every
// constructor builds a metric from its full name, help text and label names, and registers it
// with controller-runtime's registry (metrics.Registry), which the manager serves on
// --metrics-bind-address. A metric declared at package level is thus registered when its
// package is initialised, as a MustRegister in an init function would.
//
// Names are written out in full (replicapolicy_<component>_<what>) rather than built from a
// namespace and a subsystem, so that a grep for a name the alerts, the dashboard or the docs
// use finds its declaration.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Counter returns a registered counter without labels.
func Counter(name, help string) prometheus.Counter {
	return register(prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

// CounterVec returns a registered counter with the given labels.
func CounterVec(name string, labels []string, help string) *prometheus.CounterVec {
	return register(prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

// Gauge returns a registered gauge without labels.
func Gauge(name, help string) prometheus.Gauge {
	return register(prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

// GaugeVec returns a registered gauge with the given labels.
func GaugeVec(name string, labels []string, help string) *prometheus.GaugeVec {
	return register(prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
}

// register registers c with controller-runtime's registry and returns it. A second metric of
// the same name panics, as MustRegister does: two declarations of one name are a programming
// error that the first test of the package shows.
func register[C prometheus.Collector](c C) C {
	metrics.Registry.MustRegister(c)
	return c
}
