package servingcert

import "github.com/replica-policy/replica-policy/pkg/metrics"

var expiry = metrics.Gauge("replicapolicy_serving_certificate_expiry_timestamp_seconds", "Unix time of the NotAfter of the webhook's serving certificate being served (tls.crt in --cert-dir), updated when the files are rotated. The API server's calls fail after it: alert well before.")
