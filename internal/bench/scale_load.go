package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// scalePerNamespace is how many Deployments each namespace of the scale benchmark holds:
// 100,000 fill 1,000 namespaces.
const scalePerNamespace = 100

// Names of the scale benchmark's policy and workloads.
const (
	// scaleLabel is the label of every Deployment, which rule scale-selector selects.
	scaleLabelKey, scaleLabelValue = "tier", "backend"
	// nsScaleControl is the namespace of rule scale-control, which names it: it decides
	// without the workload's labels (its target needs no Deployment).
	nsScaleControl = "scale-control"
	// scaleMax is both rules' bound; the reviews ask for more.
	scaleMax = 5
)

// scalePolicy decides the reviews of the scale benchmark: the control's namespace by name,
// every other namespace of the benchmark by the Deployments' label.
var scalePolicy = fmt.Sprintf(`apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
exemptNamespaces: [kube-system, kube-public, kube-node-lease]
rules:
- name: scale-control
  namespaces: [%s]
  maxReplicas: %d
  action: clamp
- name: scale-selector
  namespaces: ["scale-*"]
  selector:
    matchLabels: {%s: %s}
  maxReplicas: %d
  action: clamp
`, nsScaleControl, scaleMax, scaleLabelKey, scaleLabelValue, scaleMax)

// scaleTarget is the namespace and name of the scale benchmark's i-th Deployment.
func scaleTarget(i int) (ns, name string) {
	return fmt.Sprintf("scale-%04d", i/scalePerNamespace), fmt.Sprintf("w-%03d", i%scalePerNamespace)
}

// createScaleLoad creates the Deployments from index from to to (exclusive), and the
// namespaces they need, ScaleCreateWorkers at a time: small Deployments (one container, no
// probes), labelled for rule scale-selector, at 2 replicas (inside the bound: the binary's
// scaler has nothing to correct).
func (e *scaleEnv) createScaleLoad(ctx context.Context, from, to int) error {
	var namespaces []int
	for i := from; i < to; i++ {
		if i == from || i%scalePerNamespace == 0 {
			namespaces = append(namespaces, i)
		}
	}
	err := inParallel(len(namespaces), func(j int) error {
		ns, _ := scaleTarget(namespaces[j])
		_, err := e.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("creating namespaces: %w", err)
	}
	labels := map[string]string{scaleLabelKey: scaleLabelValue}
	return inParallel(to-from, func(j int) error {
		ns, name := scaleTarget(from + j)
		_, err := e.client.AppsV1().Deployments(ns).Create(ctx, harness.Deployment(ns, name, 2, labels), metav1.CreateOptions{})
		return err
	})
}

// inParallel calls create for 0..n-1, ScaleCreateWorkers at a time. A create that fails
// is tried twice more (a busy API server times out now and then); one that finds its object
// there (created by an attempt that timed out) has done its work.
func inParallel(n int, create func(i int) error) error {
	var failed atomic.Int64
	var first error
	var once sync.Once
	next := make(chan int)
	var wg sync.WaitGroup
	for range ScaleCreateWorkers {
		wg.Go(func() {
			for i := range next {
				var err error
				for range 3 {
					if err = create(i); err == nil || apierrors.IsAlreadyExists(err) {
						err = nil
						break
					}
				}
				if err != nil {
					failed.Add(1)
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if failed.Load() > 0 {
		return fmt.Errorf("%d of %d creates failed; first: %w", failed.Load(), n, first)
	}
	return nil
}
