package admission

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// PolicyRef names the policy ConfigMap, which /validate checks at apply time.
type PolicyRef struct {
	Namespace, Name string
	// Options are those the running policy store compiles with, so that apply-time checks
	// agree with what the store would accept.
	Options policy.Options
}

// policyConfigMaps rejects an invalid policy ConfigMap at apply time (at Validate), listing
// every problem. Other ConfigMaps, and the Mutate stage, are not its business.
type policyConfigMaps struct {
	stage Stage
	ref   PolicyRef
}

func (p policyConfigMaps) admit(req admission.Request) answer {
	const kind = "ConfigMap"
	if p.stage != Validate || req.SubResource != "" || req.Namespace != p.ref.Namespace || req.Name != p.ref.Name ||
		(req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return answer{resp: allowed(), kind: kind, outcome: OutcomeNotHandled}
	}
	cm := &corev1.ConfigMap{}
	if err := json.Unmarshal(req.Object.Raw, cm); err != nil {
		return answer{resp: badRequest(fmt.Errorf("decoding the policy ConfigMap: %w", err)), kind: kind, outcome: OutcomeBadRequest}
	}
	_, err := policy.LoadConfigMap(cm, p.ref.Options)
	var invalid *policy.InvalidError
	switch {
	case errors.As(err, &invalid):
		msgs := make([]string, len(invalid.Errs))
		for i, e := range invalid.Errs {
			msgs[i] = e.Error()
		}
		return answer{kind: kind, outcome: OutcomeDenied, resp: denied(fmt.Sprintf(
			"invalid replica policy in ConfigMap %s/%s (the policy in force is unchanged):\n%s",
			req.Namespace, req.Name, strings.Join(msgs, "\n")))}
	case err != nil:
		return answer{resp: internalError(err), kind: kind, outcome: OutcomeBadRequest}
	}
	return answer{resp: allowed(), kind: kind, outcome: OutcomeAllowed}
}
