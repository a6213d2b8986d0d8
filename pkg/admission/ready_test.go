package admission

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/replica-policy/replica-policy/internal/harness"
	"github.com/replica-policy/replica-policy/pkg/workload"
	"k8s.io/utils/ptr"
)

// TestUntilPolicyRead: before the policy is read, a request gets HTTP 503 with no
// AdmissionReview (so that the API server applies the failurePolicy) and is counted; after,
// the webhook answers it.
func TestUntilPolicyRead(t *testing.T) {
	var read atomic.Bool
	store := mustStore(t, header+"rules:\n- {name: cap, maxReplicas: 5}\n")
	h := UntilPolicyRead(Mutate, read.Load, Webhook(NewHandler(Mutate, workload.Builtin(), store, newLookup(), PolicyRef{})))
	body := harness.DeploymentReview("u1", "apps", "web", nil, ptr.To(int32(9)), nil).JSON()
	post := func() (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, MutatePath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(b)
	}
	counter := notReady.WithLabelValues(string(Mutate))
	before := value(t, counter)
	code, answer := post()
	if code != http.StatusServiceUnavailable || strings.Contains(answer, "AdmissionReview") {
		t.Errorf("before the policy is read: HTTP %d %q, want 503 without an AdmissionReview", code, answer)
	}
	if got := value(t, counter) - before; got != 1 {
		t.Errorf("not-ready counter grew by %v, want 1", got)
	}
	read.Store(true)
	code, answer = post()
	if code != http.StatusOK || !strings.Contains(answer, `"allowed":true`) || !strings.Contains(answer, `clamped to 5`) {
		t.Errorf("after the policy is read: HTTP %d %s, want the clamp", code, answer)
	}
	if got := value(t, counter) - before; got != 1 {
		t.Errorf("not-ready counter grew by %v after the policy was read, want it to stay at 1", got)
	}
}
