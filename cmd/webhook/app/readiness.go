package app

import (
	"errors"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// readyDesc is replicapolicy_ready: the readiness checks of /readyz, each evaluated at scrape
// time. The kubelet's probe only takes the Pod out of the Service; this says which check
// holds it out, and Prometheus still scrapes a Pod that is not ready (its endpoint is listed
// with ready=false).
var readyDesc = prometheus.NewDesc("replicapolicy_ready",
	"1 when the readiness check passes, 0 when it fails, by check: webhook (the HTTPS server answers), caches (the informer caches have synced), policy (the policy ConfigMap has been read), shutdown (0 once SIGTERM arrived).",
	[]string{"check"}, nil)

// readyChecks are the checks of the process's manager; a collector registered once reads
// whichever Run registered last (tests run several in one process).
var readyChecks struct {
	sync.Mutex
	checks map[string]healthz.Checker
}

type readyCollector struct{}

func (readyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- readyDesc }

func (readyCollector) Collect(ch chan<- prometheus.Metric) {
	readyChecks.Lock()
	defer readyChecks.Unlock()
	for name, check := range readyChecks.checks {
		v := 1.0
		if check(nil) != nil {
			v = 0
		}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, v, name)
	}
}

func init() {
	metrics.Registry.MustRegister(readyCollector{})
}

// addReadyChecks serves checks at /readyz and exports them as replicapolicy_ready. The checks
// must not need the request (none of ours reads it).
func addReadyChecks(mgr ctrl.Manager, checks map[string]healthz.Checker) error {
	for name, check := range checks {
		if err := mgr.AddReadyzCheck(name, check); err != nil {
			return err
		}
	}
	readyChecks.Lock()
	readyChecks.checks = checks
	readyChecks.Unlock()
	return nil
}

// readyWhen is a readiness check that fails with notYet until ok holds.
func readyWhen(ok func() bool, notYet string) healthz.Checker {
	return func(*http.Request) error {
		if !ok() {
			return errors.New(notYet)
		}
		return nil
	}
}
