package admission

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
)

// maxReviewBytes is the largest AdmissionReview read, as controller-runtime reads it (the
// API server sends at most its own 3 MiB request limit plus the old object).
const maxReviewBytes = 7 * 1024 * 1024

// reviewServer serves a controller-runtime admission.Webhook (which recovers panics and
// completes the answer: UID, patch encoding) over HTTP as controller-runtime's own
// Webhook.ServeHTTP does (body limit, content type, the AdmissionReview's version echoed),
// except for one step: it decodes the AdmissionReview in one call of sigs.k8s.io/json, the
// decoder controller-runtime's serializer ends in, instead of through the runtime
// serializer, which first decodes the whole body once more with encoding/json only to read
// its apiVersion and kind. With a Deployment's AdmissionReview that was a quarter of what a
// request cost the webhook, more than the policy's own work (docs/benchmarks.md).
type reviewServer struct {
	wh *admission.Webhook
}

var reviewLog = logf.Log.WithName("admission")

// AdmissionReview versions the webhook answers in: both have the same schema, and the answer
// must be in the version of the request.
var (
	reviewV1      = admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")
	reviewV1beta1 = reviewV1.GroupKind().WithVersion("v1beta1")
)

func (s reviewServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		s.fail(w, http.StatusBadRequest, errors.New("request body is empty"))
		return
	}
	defer r.Body.Close()
	limited := &io.LimitedReader{R: r.Body, N: maxReviewBytes}
	body, err := io.ReadAll(limited)
	if err != nil {
		s.fail(w, http.StatusBadRequest, err)
		return
	}
	if limited.N <= 0 {
		s.fail(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request entity is too large; limit is %d bytes", maxReviewBytes))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		s.fail(w, http.StatusBadRequest, fmt.Errorf("contentType=%s, expected application/json", ct))
		return
	}
	req := admission.Request{}
	review := struct {
		metav1.TypeMeta `json:",inline"`
		Request         *admissionv1.AdmissionRequest `json:"request,omitempty"`
	}{Request: &req.AdmissionRequest}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil {
		s.fail(w, http.StatusBadRequest, fmt.Errorf("json parse error: %w", err))
		return
	}
	gvk := reviewV1
	if review.GroupVersionKind() == reviewV1beta1 {
		gvk = reviewV1beta1
	}
	// A body without a request (`{}`, another kind of object) reaches the handler as an
	// empty request, which it answers as a bad request, as with controller-runtime.
	writeReview(w, gvk, s.wh.Handle(r.Context(), req))
}

// fail answers a request that could not be read.
func (s reviewServer) fail(w http.ResponseWriter, code int32, err error) {
	reviewLog.Error(err, "bad admission request")
	writeReview(w, reviewV1, admission.Errored(code, err))
}

func writeReview(w http.ResponseWriter, gvk schema.GroupVersionKind, resp admission.Response) {
	review := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	review.APIVersion, review.Kind = gvk.GroupVersion().String(), gvk.Kind
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(review); err != nil {
		// The connection broke: nothing more can be written.
		reviewLog.Error(err, "writing the admission response")
	}
}
