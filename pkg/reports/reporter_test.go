package reports

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// crdMapper serves the Report kind once served is set.
type crdMapper struct {
	meta.RESTMapper
	served atomic.Bool
}

func (m *crdMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if m.served.Load() {
		return &meta.RESTMapping{GroupVersionKind: gk.WithVersion(versions[0])}, nil
	}
	return nil, &meta.NoKindMatchError{GroupKind: gk, SearchedVersions: versions}
}

// TestWaitForCRD: without the CRD the Reporter says so once however long it waits, and
// starts once the CRD is served.
func TestWaitForCRD(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	m := &crdMapper{}
	r := New(nil, nil, nil, Options{CRDPollInterval: 5 * time.Millisecond})
	r.mapper = m
	r.log = funcr.New(func(_, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, args)
	}, funcr.Options{})
	done := make(chan bool)
	go func() { done <- r.waitForCRD(context.Background()) }()
	time.Sleep(200 * time.Millisecond) // some 40 looks
	m.served.Store(true)
	select {
	case ok := <-done:
		if !ok {
			t.Error("waitForCRD gave up")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waitForCRD did not return once the CRD was served")
	}
	mu.Lock()
	all := strings.Join(lines, "\n")
	mu.Unlock()
	if n := strings.Count(all, "Policy reports are off until the OpenReports CRD"); n != 1 {
		t.Errorf("said %d times, want once:\n%s", n, all)
	}
	if !strings.Contains(all, "served now") {
		t.Errorf("did not say the CRD came:\n%s", all)
	}

	ctx, cancel := context.WithCancel(context.Background())
	m.served.Store(false)
	go func() { done <- r.waitForCRD(ctx) }()
	cancel()
	if <-done {
		t.Error("waitForCRD reported the CRD served after ctx ended")
	}
}
