package admission

import (
	"encoding/json"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// ProbeFieldManager marks the dry-run writes with which --native-policies asks whether the
// API server calls the webhook (pkg/nativesync: it removes a native policy only once the
// widened webhook configuration is in force). The webhook answers each such request with
// ProbeWarning besides its decision. Anyone may send one: the warning is all it gets.
const ProbeFieldManager = "replica-policy-webhook-probe"

// ProbeWarning is the warning that answers a ProbeFieldManager request.
const ProbeWarning = "replica-policy webhook called"

// isProbe reports whether req is a dry-run write with field manager ProbeFieldManager. Only
// dry-run requests are decoded further: the hot path costs one pointer test.
func isProbe(req admission.Request) bool {
	if req.DryRun == nil || !*req.DryRun || len(req.Options.Raw) == 0 {
		return false
	}
	var o struct {
		FieldManager string `json:"fieldManager"`
	}
	return json.Unmarshal(req.Options.Raw, &o) == nil && o.FieldManager == ProbeFieldManager
}
