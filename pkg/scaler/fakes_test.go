package scaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/replica-policy/replica-policy/pkg/workload"
)

// The recording fakes of the scale subresource and the Event recorder that the Reconcile
// tests (reconcile_test.go, autoscalers_test.go) wire a Reconciler to.

// scaleCall is one request to the fake scale subresource.
type scaleCall struct {
	Verb       string // "patch": the scaler sends nothing else
	Kind       string // of the object the subresource belongs to
	Namespace  string
	Name       string
	Patch      string // the JSON patch sent
	FieldOwner string // the field manager
}

// fakeScale is a client.SubResourceClient for "scale" that serves one workload as the API
// server does: a PATCH is applied, with the API server's json-patch, to the Scale's JSON
// (autoscaling/v1, replicas 0 omitted); a failed test op is answered 422 Invalid.
// patchErrs are returned by successive calls instead (a nil entry means: apply it).
type fakeScale struct {
	mu        sync.Mutex
	replicas  int32
	patchErrs []error
	calls     []scaleCall
}

var _ client.SubResourceClient = (*fakeScale)(nil)

func popErr(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

func kindOf(obj client.Object) string {
	if k, ok := workload.ForObject(obj); ok {
		return k.Kind
	}
	return fmt.Sprintf("%T", obj)
}

func (f *fakeScale) Get(context.Context, client.Object, client.Object, ...client.SubResourceGetOption) error {
	return errors.New("fakeScale: unexpected GET")
}

func (f *fakeScale) Update(context.Context, client.Object, ...client.SubResourceUpdateOption) error {
	return errors.New("fakeScale: unexpected UPDATE")
}

func (f *fakeScale) Create(context.Context, client.Object, client.Object, ...client.SubResourceCreateOption) error {
	return errors.New("fakeScale: unexpected CREATE")
}

func (f *fakeScale) Patch(_ context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := (&client.SubResourcePatchOptions{}).ApplyOptions(opts)
	data, err := patch.Data(o.SubResourceBody)
	if err != nil {
		return err
	}
	f.calls = append(f.calls, scaleCall{Verb: "patch", Kind: kindOf(obj), Namespace: obj.GetNamespace(), Name: obj.GetName(), Patch: string(data), FieldOwner: o.FieldManager})
	if err := popErr(&f.patchErrs); err != nil {
		return err
	}
	if patch.Type() != types.JSONPatchType {
		return fmt.Errorf("fakeScale: PATCH of type %s", patch.Type())
	}
	scale, ok := o.SubResourceBody.(*autoscalingv1.Scale)
	if !ok {
		return fmt.Errorf("fakeScale: PATCH with body %T, want *autoscalingv1.Scale", o.SubResourceBody)
	}
	doc, err := json.Marshal(autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Namespace: obj.GetNamespace(), Name: obj.GetName()}, Spec: autoscalingv1.ScaleSpec{Replicas: f.replicas}})
	if err != nil {
		return err
	}
	p, err := jsonpatch.DecodePatch(data)
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	patched, err := p.Apply(doc)
	if err != nil { // what kube-apiserver 1.37 answers (measured): json-patch's error stays in the server
		return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity,
			Reason: metav1.StatusReasonInvalid, Message: testFailedMessage, Details: &metav1.StatusDetails{}}}
	}
	if err := json.Unmarshal(patched, scale); err != nil {
		return err
	}
	f.replicas = scale.Spec.Replicas
	return nil
}

func (f *fakeScale) Apply(context.Context, runtime.ApplyConfiguration, ...client.SubResourceApplyOption) error {
	return errors.New("fakeScale: unexpected APPLY")
}

func (f *fakeScale) recorded() []scaleCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// recordedEvent is one Event, its note formatted.
type recordedEvent struct {
	Regarding string // namespace/name
	Type      string
	Reason    string
	Action    string
	Note      string
}

// fakeRecorder is a recorder.EventRecorder that remembers every Event.
type fakeRecorder struct {
	mu     sync.Mutex
	events []recordedEvent
}

func (f *fakeRecorder) Eventf(regarding, _ runtime.Object, eventtype, reason, action, note string, args ...any) {
	ref := fmt.Sprintf("%T", regarding)
	if m, err := meta.Accessor(regarding); err == nil {
		ref = m.GetNamespace() + "/" + m.GetName()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, recordedEvent{Regarding: ref, Type: eventtype, Reason: reason, Action: action, Note: fmt.Sprintf(note, args...)})
}

func (f *fakeRecorder) AnnotatedEventf(regarding, related runtime.Object, _ map[string]string, eventtype, reason, action, note string, args ...any) {
	f.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

func (f *fakeRecorder) recorded() []recordedEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}
