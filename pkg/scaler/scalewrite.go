package scaler

import (
	"context"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/replica-policy/replica-policy/pkg/workload"
)

// movedRequeue is when a workload whose conditional write was refused (409 Conflict) is
// evaluated again from the cache. A change of its replicas or labels queues it at once by
// its watch event, the cache having caught up (corrected 5-7 ms after the conflict in
// TestScaler/MovedIsNeverRaised); but the watch drops the other updates (workloadChanged:
// status, annotations), which refuse the write all the same and bring no event: this
// requeue is their retry (1.0 s after the conflict in the same test, an annotation), and
// bounds a workload whose cache view never matches the API to one write a second.
const movedRequeue = time.Second

// updateScale sends the conditional write of req's scale subresource: one UPDATE, no read,
// whose Scale carries the resourceVersion of obj, the cache's entry, and want. kube-apiserver
// moves the Scale's resourceVersion onto the workload and refuses the write with 409
// Conflict when the workload changed since that version (its replicas, labels, status:
// anything). An empty resourceVersion would make the write unconditional; the cache's
// entries always have one, which the API server sets on every object it stores.
func (r *Reconciler) updateScale(ctx context.Context, req Request, kind workload.Kind, obj *workload.Cached, want int32) error {
	ref := kind.New() // only namespace and name: the cached object is never sent back
	ref.SetNamespace(req.Namespace)
	ref.SetName(req.Name)
	r.scaleWrites.Add(1)
	scaleWritesTotal.Inc()
	return r.ScaleClient.Update(ctx, ref, client.WithSubResourceBody(newScale(kind, req, obj.GetResourceVersion(), want)), client.FieldOwner(FieldManager))
}

// newScale is the body of the scale write of req for kind: an autoscaling/v1 Scale of
// resourceVersion and replicas, typed for the built-in kinds; for a custom resource, whose
// object is unstructured, controller-runtime's client wants an unstructured body too.
func newScale(kind workload.Kind, req Request, resourceVersion string, replicas int32) client.Object {
	meta := metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name, ResourceVersion: resourceVersion}
	if !kind.Unstructured() {
		return &autoscalingv1.Scale{ObjectMeta: meta, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(autoscalingv1.SchemeGroupVersion.WithKind("Scale"))
	u.SetNamespace(meta.Namespace)
	u.SetName(meta.Name)
	u.SetResourceVersion(meta.ResourceVersion)
	u.Object["spec"] = map[string]any{"replicas": int64(replicas)}
	return u
}
