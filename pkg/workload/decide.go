package workload

import (
	"context"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// Decide is snap's verdict on the cached workload obj of kind, and its subject. The
// Namespace's labels are read from reader (the manager's cache) only when a rule needs
// them; a Namespace not in the cache leaves the verdict unknown (its create event brings
// the workload back). The scaler corrects by it and the policy reports report it.
func Decide(ctx context.Context, reader client.Reader, snap *policy.Snapshot, kind Kind, obj *Cached) (policy.Verdict, policy.Subject, error) {
	subj := policy.NewSubject(kind.Group, kind.Kind, obj.GetNamespace(), obj.GetName())
	subj.SetWorkload(obj.GetLabels(), obj.Controller())
	v := snap.Decide(subj, obj.Replicas())
	if v.Missing != policy.MissingNamespaceLabels {
		return v, subj, nil
	}
	if ok, err := NamespaceLabels(ctx, reader, &subj); !ok || err != nil {
		return v, subj, err
	}
	return snap.Decide(subj, obj.Replicas()), subj, nil
}

// DecideAutoscaler is snap's verdict on hpa's range by the rule of its target, and the
// target's subject (with its labels and controller from workloads, unknown when it is not
// cached). ok is false for a target of a kind not in kinds, which is not bounded.
func DecideAutoscaler(ctx context.Context, reader client.Reader, workloads *Cache, kinds *Set, snap *policy.Snapshot, hpa *autoscalingv2.HorizontalPodAutoscaler) (v policy.RangeVerdict, target policy.Subject, ok bool, err error) {
	ref := hpa.Spec.ScaleTargetRef
	rng := policy.Range{Min: policy.Replicas(hpa.Spec.MinReplicas), Max: hpa.Spec.MaxReplicas}
	return decideRange(ctx, reader, workloads, kinds, snap, policy.HPAFields, hpa.Namespace, ref.APIVersion, ref.Kind, ref.Name, rng)
}

// DecideScaledObject is DecideAutoscaler for a KEDA ScaledObject: its range (KEDA's
// defaults, its idleReplicaCount where set) by the rule of its scaleTargetRef (a
// Deployment unless it names a kind).
func DecideScaledObject(ctx context.Context, reader client.Reader, workloads *Cache, kinds *Set, snap *policy.Snapshot, so *ScaledObject) (v policy.RangeVerdict, target policy.Subject, ok bool, err error) {
	ref := so.Spec.ScaleTargetRef.Target()
	return decideRange(ctx, reader, workloads, kinds, snap, policy.ScaledObjectFields, so.Namespace, ref.APIVersion, ref.Kind, ref.Name, so.Spec.Range())
}

// decideRange is the verdict on the range rng of an autoscaler (whose fields are of) in
// namespace, by the rule of its target apiVersion/kind name.
func decideRange(ctx context.Context, reader client.Reader, workloads *Cache, kinds *Set, snap *policy.Snapshot,
	of policy.RangeFields, namespace, apiVersion, kindName, name string, rng policy.Range) (v policy.RangeVerdict, target policy.Subject, ok bool, err error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return v, target, false, nil
	}
	kind, ok := kinds.ForGroupKind(gv.Group, kindName)
	if !ok {
		return v, target, false, nil
	}
	target = policy.NewSubject(kind.Group, kind.Kind, namespace, name)
	switch w, err := workloads.Get(ctx, kind, namespace, name); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return v, target, false, err
	default:
		target.SetWorkload(w.GetLabels(), w.Controller())
	}
	v = snap.DecideRangeOf(of, target, rng)
	if v.Missing == policy.MissingNamespaceLabels {
		if found, err := NamespaceLabels(ctx, reader, &target); err != nil {
			return v, target, false, err
		} else if found {
			v = snap.DecideRangeOf(of, target, rng)
		}
	}
	return v, target, true, nil
}

// NamespaceLabels sets subj's Namespace labels from reader; ok is false when the
// Namespace is not there.
func NamespaceLabels(ctx context.Context, reader client.Reader, subj *policy.Subject) (ok bool, err error) {
	ns := &corev1.Namespace{}
	switch err := reader.Get(ctx, client.ObjectKey{Name: subj.Namespace}, ns); {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	}
	subj.SetNamespaceLabels(ns.Labels, true)
	return true, nil
}
