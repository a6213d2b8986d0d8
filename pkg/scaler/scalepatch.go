package scaler

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/replica-policy/replica-policy/pkg/workload"
)

// movedRequeue is when a workload whose conditional write found it moved is evaluated
// again. Its watch event normally queues it within milliseconds (the cache catching up);
// this is the safety net, and bounds a workload whose cache view never matches its scale
// to one write per interval.
const movedRequeue = 5 * time.Second

// scalePatch is the JSON patch (RFC 6902) of a scale subresource that sets spec.replicas to
// want only if it still holds seen, the replicas the cache saw (nil: unset). autoscaling/v1
// Scale omits spec.replicas when it is 0 (omitempty), and a custom resource's scale reads
// an unset replicas path as 0, so both are tested as absent ("value": null, which the API
// server's json-patch passes for a missing member). "add" sets the member whether it is
// there or not.
func scalePatch(seen *int32, want int32) []byte {
	test := "null"
	if seen != nil && *seen != 0 {
		test = fmt.Sprint(*seen)
	}
	return fmt.Appendf(nil, `[{"op":"test","path":"/spec/replicas","value":%s},{"op":"add","path":"/spec/replicas","value":%d}]`, test, want)
}

// patchScale sends the conditional write of req's scale subresource: one PATCH, no read.
func (r *Reconciler) patchScale(ctx context.Context, req Request, kind workload.Kind, seen *int32, want int32) error {
	ref := kind.New() // only namespace and name: the cached object is never sent back
	ref.SetNamespace(req.Namespace)
	ref.SetName(req.Name)
	r.scaleWrites.Add(1)
	scaleWritesTotal.Inc()
	return r.ScaleClient.Patch(ctx, ref, client.RawPatch(types.JSONPatchType, scalePatch(seen, want)),
		client.WithSubResourceBody(newScale(kind)), client.FieldOwner(FieldManager))
}

// movedSinceSeen reports whether err is the API server's answer to a scalePatch whose test
// failed. Measured against kube-apiserver 1.37: 422 Unprocessable Entity, reason Invalid,
// the generic message "the server rejected our request due to an error in our request"
// and no causes (json-patch's own error stays in the server). A validation error is also
// a 422 Invalid but names its fields (causes) and the Scale; an admission webhook's denial
// has its own message: both are failures.
func movedSinceSeen(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) {
		return false
	}
	s := status.Status()
	return s.Code == http.StatusUnprocessableEntity && s.Message == testFailedMessage &&
		(s.Details == nil || len(s.Details.Causes) == 0)
}

// testFailedMessage is apimachinery's message for a 422 without one of its own, which
// kube-apiserver's patcher sends when a JSON patch does not apply.
const testFailedMessage = "the server rejected our request due to an error in our request"

// newScale is the body of a scale subresource request for kind: a typed Scale for the
// built-in kinds; for a custom resource, whose object is unstructured, controller-runtime's
// client wants an unstructured body too.
func newScale(kind workload.Kind) client.Object {
	if !kind.Unstructured() {
		return &autoscalingv1.Scale{}
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(autoscalingv1.SchemeGroupVersion.WithKind("Scale"))
	return u
}
