package nativesync

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/replica-policy/replica-policy/pkg/admission"
)

// maxWidenTargets bounds the workloads one Widened call tries: two dry-run writes each.
const maxWidenTargets = 3

// widenSettle is how long Widened waits when it has nothing to probe with (no Deployment or
// StatefulSet in a namespace the webhook selects, or none whose count a write may change):
// only the creation of a workload could then fall in the moment the API server takes to
// load the widened configuration, which its informer does within milliseconds.
const widenSettle = time.Second

// WidenProbe: the requests of Widened carry the field manager admission.ProbeFieldManager.
// The binary's requests always carry options (update options, for a /scale write), so the
// term needs no guard for a request without them.
func (p *DryRunProber) WidenProbe() string {
	return "has(request.options.fieldManager) && request.options.fieldManager == " + strconv.Quote(admission.ProbeFieldManager)
}

// Widened proves that the API server calls the widened webhook: it sends a dry-run scale
// with field manager admission.ProbeFieldManager, which the wide condition lets through to
// the webhook and the narrow one keeps from it, and to which the webhook adds the warning
// admission.ProbeWarning. It scales to one replica more and one less than the list said the
// workload has: the manifests' replicas-changed condition skips a write that changes nothing
// (the count may have moved since the list, or a native clamp still in force may bring it
// back to the current one), so one of the two, or of those to another workload, must reach
// the webhook when the API server calls it.
func (p *DryRunProber) Widened(ctx context.Context, webhookNamespaces *metav1.LabelSelector) (bool, string, error) {
	sel, err := metav1.LabelSelectorAsSelector(webhookNamespaces)
	if err != nil {
		return false, "", fmt.Errorf("the webhook's namespaceSelector: %w", err)
	}
	nss, err := p.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 500})
	if err != nil {
		return false, "", fmt.Errorf("listing namespaces for a probe: %w", err)
	}
	selected := map[string]bool{}
	for _, ns := range nss.Items {
		selected[ns.Name] = p.scope.Matches(labels.Set(ns.Labels)) && sel.Matches(labels.Set(ns.Labels))
	}
	targets, err := p.targets(ctx)
	if err != nil {
		return false, "", err
	}
	tried, why := 0, ""
	for _, tg := range targets {
		if tried == maxWidenTargets {
			break
		}
		if !selected[tg.namespace] {
			continue
		}
		tried++
		for _, n := range []int32{tg.replicas + 1, tg.replicas - 1} {
			if n < 0 {
				continue
			}
			_, warnings, err := p.dryRunScale(ctx, tg, n, admission.ProbeFieldManager)
			if strings.Contains(warnings, admission.ProbeWarning) {
				return true, "", nil
			}
			why = fmt.Sprintf("a dry-run scale of %s %s/%s to %d got no answer from the webhook yet (%v)", tg.kind, tg.namespace, tg.name, n, err)
		}
	}
	if tried > 0 {
		return false, why, nil
	}
	select {
	case <-ctx.Done():
		return false, "", ctx.Err()
	case <-time.After(widenSettle):
	}
	return true, "", nil
}
