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

// ScaledObjectResource is the resource of KEDA's ScaledObjects (keda.sh/v1alpha1), which own
// the HPA they create: /mutate keeps their range inside the bounds as an HPA's, so that KEDA
// writes its HPA inside them.
var ScaledObjectResource = schema.GroupResource{Group: "keda.sh", Resource: "scaledobjects"}

// autoscalers admits writes of HorizontalPodAutoscalers (or, with of ScaledObjectFields, of
// KEDA's ScaledObjects) at /mutate. An HPA whose range leaves its target's bounds would
// fight the clamp of its own scale writes forever (a clamped write every sync period, a
// SuccessfulRescale Event for a size that never happens): its range is decided by the rule
// of its scaleTargetRef, as the policy's DecideRange says. A ScaledObject writes its range
// into the HPA it owns, so the fight ends only there.
type autoscalers struct {
	kinds  *workload.Set
	store  *policystore.Store
	lookup Lookup
	// of names the autoscaler's kind and fields: policy.HPAFields when zero.
	of policy.RangeFields
}

// fields are a.of, policy.HPAFields when unset.
func (a autoscalers) fields() policy.RangeFields {
	if a.of.Kind == "" {
		return policy.HPAFields
	}
	return a.of
}

// autoscalerFields is all a decision reads of an HPA, the same in autoscaling/v1 and v2, or
// of a ScaledObject.
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
		// A ScaledObject's.
		MinReplicaCount  *int32 `json:"minReplicaCount"`
		MaxReplicaCount  *int32 `json:"maxReplicaCount"`
		IdleReplicaCount *int32 `json:"idleReplicaCount"`
	} `json:"spec"`
}

// autoscalerRange is the autoscaler's range: an HPA's with the API's default minReplicas of
// 1, a ScaledObject's as workload.ScaledObjectSpec reads it (KEDA's defaults, 0 and 100,
// and its idle size where set).
func (f *autoscalerFields) autoscalerRange(of policy.RangeFields) policy.Range {
	if of.Kind != policy.ScaledObjectKind {
		return policy.Range{Min: policy.Replicas(f.Spec.MinReplicas), Max: f.Spec.MaxReplicas}
	}
	return workload.ScaledObjectSpec{MinReplicaCount: f.Spec.MinReplicaCount, MaxReplicaCount: f.Spec.MaxReplicaCount,
		IdleReplicaCount: f.Spec.IdleReplicaCount}.Range()
}

func (a autoscalers) admit(req admission.Request) answer {
	of := a.fields()
	kind := of.Kind
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
		if old.autoscalerRange(of) == obj.autoscalerRange(of) && old.Spec.ScaleTargetRef == obj.Spec.ScaleTargetRef {
			return answer{resp: allowed(), kind: kind, outcome: OutcomeUnchanged}
		}
	}
	target, ok := a.target(req.Namespace, obj)
	if !ok {
		// Its target is of a kind the policy does not bound.
		return answer{resp: allowed(), kind: kind, outcome: OutcomeNoRule}
	}
	d := decideAutoscaler(a.store.Snapshot(), of, target, req.Name, obj)
	r := obj.autoscalerRange(of)
	asked := fmt.Sprintf(`"minReplicas":%d,"maxReplicas":%d`, r.Min, r.Max)
	if r.HasIdle {
		asked += fmt.Sprintf(`,"idleReplicas":%d`, r.Idle)
	}
	return answer{resp: decisionResponse(d, asked), kind: kind, rule: d.Rule, action: d.Action, outcome: d.Outcome}
}

// target is the policy's subject for the HPA's scaleTargetRef: the workload's kind, and its
// labels and controller from the cache (unknown when it is not cached yet, as for a Scale).
func (a autoscalers) target(namespace string, obj *autoscalerFields) (policy.Subject, bool) {
	ref := obj.Spec.ScaleTargetRef
	if a.fields().Kind == policy.ScaledObjectKind {
		// KEDA scales a Deployment unless told otherwise.
		t := workload.ScaledObjectTarget{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name}.Target()
		ref.APIVersion, ref.Kind = t.APIVersion, t.Kind
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return policy.Subject{}, false
	}
	kind, ok := a.kinds.ForGroupKind(gv.Group, ref.Kind)
	if !ok {
		return policy.Subject{}, false
	}
	subj := policy.NewSubject(kind.Group, kind.Kind, namespace, ref.Name)
	if labels, controller, found := a.lookup.WorkloadLabels(kind, namespace, ref.Name); found {
		subj.SetWorkload(labels, controller)
	}
	subj.SetNamespaceLabels(a.lookup.NamespaceLabels(namespace))
	return subj, true
}

// decideAutoscaler is the answer for the HPA name whose target is target, at /mutate: the
// policy's effect (policy.RangeVerdict.Effect), whose Patch moves the range inside the
// bounds. An HPA with a controller of its own (KEDA's ScaledObject) is never patched.
func decideAutoscaler(snap *policy.Snapshot, of policy.RangeFields, target policy.Subject, name string, obj *autoscalerFields) Decision {
	v := snap.DecideRangeOf(of, target, obj.autoscalerRange(of))
	controller := policy.OwnerOf(metav1.GetControllerOfNoCopy(&metav1.ObjectMeta{OwnerReferences: obj.Metadata.OwnerReferences}))
	return decisionOf(v.Effect(policy.AtMutate, name, target, controller), func(d *Decision) { d.Range, d.rangeOf, d.rangeAsked = &v.Want, of, v.Range })
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
