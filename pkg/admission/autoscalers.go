package admission

import (
	"encoding/json"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/policystore"
	"github.com/replica-policy/replica-policy/pkg/workload"
)

// AutoscalerResource is the resource of HorizontalPodAutoscalers, which /mutate keeps inside
// the bounds of their target workload's rule.
var AutoscalerResource = schema.GroupResource{Group: "autoscaling", Resource: "horizontalpodautoscalers"}

// autoscalers admits writes of HorizontalPodAutoscalers at /mutate. An HPA whose range
// leaves its target's bounds would fight the clamp of its own scale writes forever (a
// clamped write every sync period, a SuccessfulRescale Event for a size that never happens):
// its range is decided by the rule of its scaleTargetRef, as the policy's DecideRange says.
type autoscalers struct {
	kinds  *workload.Set
	store  *policystore.Store
	lookup Lookup
}

// autoscalerFields is all a decision reads of an HPA, the same in autoscaling/v1 and v2.
type autoscalerFields struct {
	Metadata struct {
		OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicas *int32 `json:"minReplicas"`
		MaxReplicas int32  `json:"maxReplicas"`
	} `json:"spec"`
}

// autoscalerRange is an HPA's range, with the API's default minReplicas of 1.
func (f *autoscalerFields) autoscalerRange() policy.Range {
	return policy.Range{Min: policy.Replicas(f.Spec.MinReplicas), Max: f.Spec.MaxReplicas}
}

func (a autoscalers) admit(req admission.Request) answer {
	kind := policy.AutoscalerKind
	if req.SubResource != "" || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return answer{resp: notHandled(fmt.Sprintf("%s of %s", req.Operation, resourceName(req))), kind: kind, outcome: OutcomeNotHandled}
	}
	obj, err := decodeAutoscaler(req.Object.Raw, "object")
	if err != nil {
		return answer{resp: badRequest(err), kind: kind, outcome: OutcomeBadRequest}
	}
	if req.Operation == admissionv1.Update {
		old, err := decodeAutoscaler(req.OldObject.Raw, "oldObject")
		if err != nil {
			return answer{resp: badRequest(err), kind: kind, outcome: OutcomeBadRequest}
		}
		// Neither the range nor the target changed (a metrics or behavior edit): never
		// denied, as an update that leaves a workload's replicas alone; the scaler reports it.
		if old.autoscalerRange() == obj.autoscalerRange() && old.Spec.ScaleTargetRef == obj.Spec.ScaleTargetRef {
			return answer{resp: allowed(), kind: kind, outcome: OutcomeUnchanged}
		}
	}
	target, ok := a.target(req.Namespace, obj)
	if !ok {
		// Its target is of a kind the policy does not bound.
		return answer{resp: allowed(), kind: kind, outcome: OutcomeNoRule}
	}
	d := decideAutoscaler(a.store.Snapshot(), target, req.Name, obj)
	asked := fmt.Sprintf(`"minReplicas":%d,"maxReplicas":%d`, obj.autoscalerRange().Min, obj.autoscalerRange().Max)
	return answer{resp: decisionResponse(d, asked), kind: kind, rule: d.Rule, action: d.Action, outcome: d.Outcome}
}

// target is the policy's subject for the HPA's scaleTargetRef: the workload's kind, and its
// labels and controller from the cache (unknown when it is not cached yet, as for a Scale).
func (a autoscalers) target(namespace string, obj *autoscalerFields) (policy.Subject, bool) {
	ref := obj.Spec.ScaleTargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return policy.Subject{}, false
	}
	kind, ok := a.kinds.ForGroupKind(gv.Group, ref.Kind)
	if !ok {
		return policy.Subject{}, false
	}
	subj := policy.Subject{Group: kind.Group, Kind: kind.Kind, Namespace: namespace, Name: ref.Name}
	labels, controller, found := a.lookup.WorkloadLabels(kind, namespace, ref.Name)
	subj.Labels, subj.LabelsUnknown = labels, !found
	if controller != nil {
		subj.Owner = ownerOf(controller)
	}
	subj.NamespaceLabels, found = a.lookup.NamespaceLabels(namespace)
	subj.NamespaceLabelsUnknown = !found
	return subj, true
}

// decideAutoscaler is the answer for the HPA name whose target is target, at /mutate: clamp
// moves the range inside the bounds, deny rejects, warn warns. An HPA with a controller of
// its own (KEDA's ScaledObject) is never patched, since its controller would write the range
// back: under a clamp rule it is allowed with a warning, and the scaler reports it.
func decideAutoscaler(snap *policy.Snapshot, target policy.Subject, name string, obj *autoscalerFields) Decision {
	v := snap.DecideRange(target, obj.autoscalerRange())
	d, decided := ruleDecision(v.Outcome, v.Rule)
	if !decided {
		return d
	}
	r := v.Rule
	switch {
	case v.Outcome == policy.OutcomeUnknown:
		d.Outcome = OutcomeUnknown
		d.Warnings = []string{fmt.Sprintf("%s %q: replica policy rule %q could not be checked: the %s of its target %s %q are not in the webhook's cache yet; the scaler will report it if its range is outside %s",
			policy.AutoscalerKind, name, r.Name, v.Missing, target.Kind, target.Name, r.Bounds)}
	case v.Outcome == policy.OutcomeInBounds:
	case r.Action == policy.ActionClamp:
		if ctl := metav1.GetControllerOfNoCopy(&metav1.ObjectMeta{OwnerReferences: obj.Metadata.OwnerReferences}); ctl != nil {
			d.Outcome = OutcomeWarned
			d.Warnings = []string{v.ControlledMessage(name, ctl.Kind, ctl.Name)}
			break
		}
		d.Range = &v.Want
		d.Outcome = OutcomeClamped
		d.Warnings = v.ClampMessages(name)
	case r.Action == policy.ActionWarn:
		d.Outcome = OutcomeWarned
		d.Warnings = []string{v.OutOfBoundsMessage(name)}
	default:
		d.Allowed = false
		d.Outcome = OutcomeDenied
		d.Message = v.OutOfBoundsMessage(name)
	}
	return d
}

// decodeAutoscaler reads the fields of an HPA that a decision needs.
func decodeAutoscaler(raw []byte, what string) (*autoscalerFields, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("the request carries no %s", what)
	}
	f := &autoscalerFields{}
	if err := json.Unmarshal(raw, f); err != nil {
		return nil, fmt.Errorf("decoding the %s: %w", what, err)
	}
	return f, nil
}
