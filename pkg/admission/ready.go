package admission

import "net/http"

// UntilPolicyRead answers every request with HTTP 503 and no AdmissionReview until
// policyRead reports true, then hands requests to next. An answer before the policy is read
// would be a guess: allowed (a silent gap in the bounds) or denied (an outage of writes). A
// failed call instead leaves the decision to the webhook configuration's failurePolicy, as an
// outage would: Ignore lets the write through (the scaler corrects it once the policy is
// read), Fail rejects it. An AdmissionReview with allowed: false would be a rejection
// whatever its status code: the API server applies failurePolicy only to calls that fail.
func UntilPolicyRead(stage Stage, policyRead func() bool, next http.Handler) http.Handler {
	counter := notReady.WithLabelValues(string(stage))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !policyRead() {
			counter.Inc()
			http.Error(w, "replica-policy has not read its policy yet", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}
