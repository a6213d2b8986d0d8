package servingcert

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var expiry = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "replicapolicy_serving_certificate_expiry_timestamp_seconds",
	Help: "Unix time of the NotAfter of the webhook's serving certificate being served (tls.crt in --cert-dir), updated when the files are rotated. The API server's calls fail after it: alert well before.",
})

func init() {
	metrics.Registry.MustRegister(expiry)
}
