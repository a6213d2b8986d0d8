package nativesync

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// Prober tells when the API server enforces the native policies that were just applied: the
// Syncer narrows the webhook only then. An admission policy has no status that says so (a
// ValidatingAdmissionPolicy's status.typeChecking comes from kube-controller-manager's type
// checker, not from the admission plugin, and a MutatingAdmissionPolicy has none); each API
// server loads policies from its own informers a moment after they are written.
type Prober interface {
	// Enforced reports whether the API server enforces res, the compiled form of snap; when
	// not, why (the Syncer asks again shortly).
	Enforced(ctx context.Context, snap *policy.Snapshot, res *native.Result) (bool, string, error)
	// WebhookExclusion is a CEL term of a webhook matchCondition, true for the probes'
	// requests: the Syncer keeps them from the webhook, so that their answers are the native
	// policies' alone. "" when the probes need no exclusion.
	WebhookExclusion() string
	// Widened reports whether the API server calls the webhook as the wide state says, for
	// writes in the namespaces webhookNamespaces selects: the Syncer removes a native object
	// only then.
	Widened(ctx context.Context, webhookNamespaces *metav1.LabelSelector) (bool, string, error)
	// WidenProbe is a CEL term true for the requests of Widened, which WebhookExclusion
	// matches too: the wide state lets them through to the webhook, the narrow one does not,
	// so that a webhook answer proves the wide state in force. "" when there are none.
	WidenProbe() string
}

// DryRunProber proves enforcement with dry-run writes (dryRun=All: admission runs in full,
// nothing is stored) of the /scale of an existing Deployment or StatefulSet, one per action the compiled
// policies take, each outside the bounds of the rule that decides it: a clamp must come back
// at the bound, a deny must be refused by the deny policy by name, a warn must carry the
// warn policy's warning. The probes need no right beyond the scaler's (update of their
// /scale) and the webhook never sees them (WebhookExclusion), so a positive answer is the
// native policies'. Only Deployments and StatefulSets are probed: their /scale is compiled
// (nothing owns them). Where none outside an exempt namespace is decided by a rule of an
// action, that action cannot be proven and the webhook stays wide.
type DryRunProber struct {
	client   kubernetes.Interface
	warnings *warningLog
	username string
	scope    labels.Selector // the namespaces native mode is confined to (Options.Scope)
}

// NewDryRunProber returns a prober that writes with cfg (the binary's own identity, which
// WebhookExclusion names) in the namespaces scope selects (Options.Scope; nil: all).
func NewDryRunProber(ctx context.Context, cfg *rest.Config, scope *metav1.LabelSelector) (*DryRunProber, error) {
	sel := labels.Everything()
	if scope != nil {
		var err error
		if sel, err = metav1.LabelSelectorAsSelector(scope); err != nil {
			return nil, fmt.Errorf("the namespace selector of native mode: %w", err)
		}
	}
	w := &warningLog{}
	c := rest.CopyConfig(cfg)
	c.WarningHandlerWithContext = w
	client, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, err
	}
	// Who am I: every authenticated user may ask (SelfSubjectReview, GA since 1.28).
	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("asking the API server who the binary is (SelfSubjectReview): %w", err)
	}
	if review.Status.UserInfo.Username == "" {
		return nil, fmt.Errorf("the API server gives the binary no username")
	}
	return &DryRunProber{client: client, warnings: w, username: review.Status.UserInfo.Username, scope: sel}, nil
}

// WebhookExclusion: dry-run requests of the binary's own user.
func (p *DryRunProber) WebhookExclusion() string {
	return "request.dryRun && request.userInfo.username == " + strconv.Quote(p.username)
}

// probeReplicas are the probe's counts to try, outside most bounds: above any max, below any
// min, zero (below a min without allowZero).
func probeReplicas(b policy.Bounds) []int32 {
	var out []int32
	if b.Max != nil && *b.Max < 1<<30 {
		out = append(out, *b.Max+1)
	}
	if b.Min != nil && *b.Min > 1 {
		out = append(out, *b.Min-1)
	}
	return append(out, 0)
}

// Enforced probes each action res compiles.
func (p *DryRunProber) Enforced(ctx context.Context, snap *policy.Snapshot, res *native.Result) (bool, string, error) {
	actions := map[policy.Action]string{}
	if res.Clamp != nil {
		actions[policy.ActionClamp] = res.Clamp.Name
	}
	if res.Deny != nil {
		actions[policy.ActionDeny] = res.Deny.Name
	}
	if res.Warn != nil {
		actions[policy.ActionWarn] = res.Warn.Name
	}
	if len(actions) == 0 {
		return true, "", nil
	}
	nsLabels, err := p.scopedNamespaces(ctx)
	if err != nil {
		return false, "", err
	}
	targets, err := p.targets(ctx)
	if err != nil {
		return false, "", err
	}
	for action, name := range actions {
		found, ok, why, err := p.proveAction(ctx, snap, targets, nsLabels, action, name)
		if found && (err != nil || !ok) {
			return false, why, err
		}
		if !found && decidesIn(snap, action, nsLabels) {
			return false, fmt.Sprintf("no Deployment or StatefulSet in a namespace where a rule with action %s decides /scale writes, to prove that the API server enforces %s", action, name), nil
		}
		// No namespace where a rule of that action decides: the policy has nothing for it
		// to enforce yet, so there is nothing to prove.
	}
	return true, "", nil
}

// scopedNamespaces are the labels of the namespaces (the first page of 500) that the
// bindings' scope selects, by name.
func (p *DryRunProber) scopedNamespaces(ctx context.Context) (map[string]map[string]string, error) {
	nss, err := p.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 500})
	if err != nil {
		return nil, fmt.Errorf("listing namespaces for a probe: %w", err)
	}
	nsLabels := map[string]map[string]string{}
	for _, ns := range nss.Items {
		if p.scope.Matches(labels.Set(ns.Labels)) {
			nsLabels[ns.Name] = ns.Labels
		}
	}
	return nsLabels, nil
}

// proveAction probes the policy name, which enforces the rules of action, with the first
// target that a rule of that action decides and a size outside its bounds: found says
// whether there was one, ok and why what the probe proved.
func (p *DryRunProber) proveAction(ctx context.Context, snap *policy.Snapshot, targets []target, nsLabels map[string]map[string]string, action policy.Action, name string) (found, ok bool, why string, err error) {
	for _, tg := range targets {
		nsl, known := nsLabels[tg.namespace]
		if !known {
			continue // outside the scope, or past the first page of namespaces
		}
		subj := policy.Subject{Group: "apps", Kind: tg.kind, Namespace: tg.namespace, Name: tg.name,
			LabelsUnknown: true, NamespaceLabels: nsl}
		v := snap.Decide(subj, ptr.To(int32(1)))
		if v.Outcome == policy.OutcomeUnknown || v.Rule == nil || v.Rule.Action != action {
			continue
		}
		for _, n := range probeReplicas(v.Rule.Bounds) {
			if v := snap.Decide(subj, &n); v.Outcome == policy.OutcomeOutOfBounds {
				ok, why, err := p.probe(ctx, tg, v, name)
				return true, ok, why, err
			}
		}
	}
	return false, false, "", nil
}

// decidesIn reports whether a rule with action decides /scale writes of a Deployment or a
// StatefulSet in one of the namespaces (name: labels).
func decidesIn(snap *policy.Snapshot, action policy.Action, namespaces map[string]map[string]string) bool {
	for ns, nsl := range namespaces {
		for _, kind := range []string{"Deployment", "StatefulSet"} {
			v := snap.Decide(policy.Subject{Group: "apps", Kind: kind, Namespace: ns, LabelsUnknown: true, NamespaceLabels: nsl}, ptr.To(int32(1)))
			if v.Outcome != policy.OutcomeUnknown && v.Rule != nil && v.Rule.Action == action {
				return true
			}
		}
	}
	return false
}

// target is a workload whose /scale a probe writes (dry run), and its replicas.
type target struct {
	kind, namespace, name string
	replicas              int32
}

// targets are the Deployments and StatefulSets of one page of each list (enough to find a
// probe for each action): kinds the compiled policies decide /scale writes of (nothing owns
// them), and which the binary may scale.
func (p *DryRunProber) targets(ctx context.Context) ([]target, error) {
	var out []target
	deploys, err := p.client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{Limit: 500})
	if err != nil {
		return nil, fmt.Errorf("listing Deployments for a probe: %w", err)
	}
	for _, d := range deploys.Items {
		out = append(out, target{"Deployment", d.Namespace, d.Name, ptrValue(d.Spec.Replicas)})
	}
	sets, err := p.client.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{Limit: 500})
	if err != nil {
		return nil, fmt.Errorf("listing StatefulSets for a probe: %w", err)
	}
	for _, d := range sets.Items {
		out = append(out, target{"StatefulSet", d.Namespace, d.Name, ptrValue(d.Spec.Replicas)})
	}
	return out, nil
}

// probe writes v.Replicas to the /scale of tg with dryRun=All and checks the answer of the
// native policy policyName.
func (p *DryRunProber) probe(ctx context.Context, tg target, v policy.Verdict, policyName string) (bool, string, error) {
	got, warnings, err := p.dryRunScale(ctx, tg, v.Replicas, "")
	where := fmt.Sprintf("a dry-run scale of %s %s/%s to %d", tg.kind, tg.namespace, tg.name, v.Replicas)
	switch v.Rule.Action {
	case policy.ActionDeny:
		if err != nil && strings.Contains(err.Error(), "'"+policyName+"'") {
			return true, "", nil
		}
		return false, fmt.Sprintf("%s was not refused by %s yet (%v)", where, policyName, err), nil
	case policy.ActionWarn:
		if err == nil && strings.Contains(warnings, "'"+policyName+"'") {
			return true, "", nil
		}
		return false, fmt.Sprintf("%s got no warning from %s yet (%v)", where, policyName, err), nil
	default:
		if err == nil && got.Spec.Replicas == v.Want {
			return true, "", nil
		}
		var replicas int32
		if got != nil {
			replicas = got.Spec.Replicas
		}
		return false, fmt.Sprintf("%s came back with %d replicas, not clamped to %d by %s yet (%v)", where, replicas, v.Want, policyName, err), nil
	}
}

// dryRunScale writes replicas to the /scale of tg with dryRun=All (and fieldManager, when
// set), and returns the Scale the API server answered (nil on an error) and its warnings.
func (p *DryRunProber) dryRunScale(ctx context.Context, tg target, replicas int32, fieldManager string) (*autoscalingv1.Scale, string, error) {
	p.warnings.take()
	// An UPDATE of the /scale subresource, as the scaler writes it (its ServiceAccount may
	// update /scale, not patch it), without a resourceVersion: whatever the workload holds.
	scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Namespace: tg.namespace, Name: tg.name}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	opts := metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: fieldManager}
	var got *autoscalingv1.Scale
	var err error
	if tg.kind == "StatefulSet" {
		got, err = p.client.AppsV1().StatefulSets(tg.namespace).UpdateScale(ctx, tg.name, scale, opts)
	} else {
		got, err = p.client.AppsV1().Deployments(tg.namespace).UpdateScale(ctx, tg.name, scale, opts)
	}
	if err != nil {
		got = nil
	}
	return got, p.warnings.take(), err
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return 1 // the API server's default
	}
	return *p
}

// warningLog collects the warnings of the prober's requests (one request at a time).
type warningLog struct {
	mu   sync.Mutex
	text []string
}

func (w *warningLog) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text = append(w.text, text)
}

func (w *warningLog) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.Join(w.text, "\n")
	w.text = nil
	return s
}
