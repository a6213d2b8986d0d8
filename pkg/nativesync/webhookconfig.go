package nativesync

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/replica-policy/replica-policy/pkg/native"
	"github.com/replica-policy/replica-policy/pkg/policy"
)

// The binary owns three fields of its workload webhook entries in the MutatingWebhookConfiguration
// (every entry whose rules name a bounded workload resource or its /scale): rules,
// namespaceSelector and the matchCondition ConditionName. It server-side applies them with
// force, so that a re-application of the manifests (kubectl apply, a GitOps sync) takes them
// back only until the Syncer sees it; the entry's other fields, the other entries (HPAs) and
// the manifests' own matchConditions stay whoever installed them.
//
// It also owns the entry next to each of them named ScaleEntryPrefix + the entry's name: the
// /scale writes a selector rule may decide (native.WebhookScale.BySelector), with a
// namespaceSelector that leaves out the namespaces rules without a selector decide. The
// manifests ship that entry for every /scale write (scale.mutate.replicapolicy.io, without
// the workload entry's condition, which would cost each call a conversion of the object for
// CEL), which is what it does without --native-policies; the Syncer adds it where an
// installation lacks it. The workload entry gives it everything else (clientConfig,
// failurePolicy, timeouts, the manifests' matchConditions), so a new CA bundle or Service
// there reaches it at the next sync. While the webhook is wide, the workload entry takes the
// /scale writes too and this one, like when no selector rule may decide a /scale write,
// selects no namespace: it stays, so that no sync has to delete an entry whose fields another
// manager (a CA injector) may share.

// ScaleEntryPrefix begins the name of the scale entry next to each workload entry.
const ScaleEntryPrefix = "scale."

// earlierScaleEntryPrefix began its name in builds before 2026-12-08. Such an entry, left in
// an upgraded installation until someone deletes it (docs/native-policies.md), is neither a
// workload entry nor the scale entry: the Syncer leaves it alone.
const earlierScaleEntryPrefix = "native-scale."

// webhookState is what the Syncer wants those fields to be.
type webhookState struct {
	rules     []admissionregistrationv1.RuleWithOperations
	condition string
	// closed: the workload entries' condition is false instead, their rules kept only
	// because an apply cannot say "none" (narrowState).
	closed bool
	// scaleRules and scaleNamespaces are the scale entries' rules and namespaceSelector; they
	// share condition.
	scaleRules      []admissionregistrationv1.RuleWithOperations
	scaleNamespaces *metav1.LabelSelector
}

// wideState sends the webhook every write of every bounded kind: the state while the native
// policies cannot decide (none applied yet, one missing or edited, a policy CEL cannot hold).
// The condition keeps the Syncer's own dry-run probes away from the webhook, so that their
// answers show what the native policies alone decide, but for those that ask whether the
// API server calls the widened webhook (Prober.WidenProbe), which only this state lets through.
func (s *Syncer) wideState() webhookState {
	cond := s.withoutProbes("true")
	if wp := s.opts.Prober.WidenProbe(); wp != "" && cond != "true" {
		cond += " || (" + wp + ")"
	}
	return webhookState{rules: workloadRules(s.opts.WebhookKinds, nil, nil), condition: cond,
		scaleRules: scaleRules(s.opts.Kinds), scaleNamespaces: native.NoNamespaces()}
}

// narrowState leaves the webhook what the compiled policies cannot decide: object writes of
// compiled kinds leave its rules, and so do /scale writes of compiled kinds that neither a
// selector rule nor an owned workload's rule may decide; those a selector rule may decide go
// to the scale entries, in the namespaces where one may; cond (the compiler's
// WebhookMatchCondition) lets through only those of the rest that such a rule may decide.
func (s *Syncer) narrowState(cond string, scale native.WebhookScale) webhookState {
	st := webhookState{rules: workloadRules(s.opts.WebhookKinds, s.opts.Kinds, scale.Owned), condition: s.withoutProbes(cond),
		scaleRules: scaleRules(scale.BySelector), scaleNamespaces: andSelectors(s.opts.NamespaceSelector, scale.Namespaces)}
	if len(st.rules) == 0 {
		// Nothing left for the workload entries, but an apply cannot say "no rules" (the
		// field is omitted when empty, and the manifests' would stay): they keep the /scale
		// rules of every compiled kind under a condition that never holds, or a /scale write
		// the scale entry takes would reach the webhook twice.
		st.rules, st.closed = scaleRules(s.opts.Kinds), true
	}
	if len(scale.BySelector) == 0 {
		st.scaleRules, st.scaleNamespaces = scaleRules(s.opts.Kinds), native.NoNamespaces()
	}
	return st
}

// workloadCondition is the workload entries' condition ConditionName.
func (w webhookState) workloadCondition() string {
	if w.closed {
		return "false"
	}
	return w.condition
}

func (s *Syncer) withoutProbes(cond string) string {
	ex := s.opts.Prober.WebhookExclusion()
	if ex == "" {
		return cond
	}
	if cond == "true" {
		return "!(" + ex + ")"
	}
	return "!(" + ex + ") && (" + cond + ")"
}

// workloadRules are the webhook rules of kinds: CREATE and UPDATE of the objects, UPDATE of
// their /scale, except for the objects of the compiled kinds, whose writes the native
// policies decide, and the /scale of compiled kinds not in scale.
func workloadRules(kinds, compiled, scale []policy.WorkloadKind) []admissionregistrationv1.RuleWithOperations {
	type gv struct{ group, version string }
	objects, scales := map[gv][]string{}, map[gv][]string{}
	var order []gv
	for _, k := range kinds {
		g := gv{k.Group, k.Version}
		if !slices.Contains(order, g) {
			order = append(order, g)
		}
		if !containsKind(compiled, k) {
			objects[g] = append(objects[g], k.Resource)
		}
		if !containsKind(compiled, k) || containsKind(scale, k) {
			scales[g] = append(scales[g], k.Resource+"/scale")
		}
	}
	scope := admissionregistrationv1.NamespacedScope
	rule := func(g gv, resources []string, ops ...admissionregistrationv1.OperationType) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{Operations: ops,
			Rule: admissionregistrationv1.Rule{APIGroups: []string{g.group}, APIVersions: []string{g.version}, Resources: resources, Scope: &scope}}
	}
	var rules []admissionregistrationv1.RuleWithOperations
	for _, g := range order {
		if len(objects[g]) > 0 {
			rules = append(rules, rule(g, objects[g], admissionregistrationv1.Create, admissionregistrationv1.Update))
		}
		if len(scales[g]) > 0 {
			rules = append(rules, rule(g, scales[g], admissionregistrationv1.Update))
		}
	}
	return rules
}

// scaleRules are the rules of the /scale of kinds, UPDATE only.
func scaleRules(kinds []policy.WorkloadKind) []admissionregistrationv1.RuleWithOperations {
	return workloadRules(kinds, kinds, kinds)
}

// workloadEntries are the names of the entries of mwc whose rules name a resource (or its
// /scale) of one of kinds, in any version, but for the scale entries (of this build's name
// or an earlier one).
func workloadEntries(mwc *admissionregistrationv1.MutatingWebhookConfiguration, kinds []policy.WorkloadKind) []string {
	var names []string
	for _, w := range mwc.Webhooks {
		if strings.HasPrefix(w.Name, ScaleEntryPrefix) || strings.HasPrefix(w.Name, earlierScaleEntryPrefix) {
			continue
		}
		if slices.ContainsFunc(w.Rules, func(r admissionregistrationv1.RuleWithOperations) bool {
			for _, k := range kinds {
				if (slices.Contains(r.APIGroups, k.Group) || slices.Contains(r.APIGroups, "*")) &&
					(slices.Contains(r.Resources, k.Resource) || slices.Contains(r.Resources, k.Resource+"/scale")) {
					return true
				}
			}
			return false
		}) {
			names = append(names, w.Name)
		}
	}
	return names
}

// inState reports whether every workload entry of mwc, and the scale entry next to each, has
// the fields of want.
func (s *Syncer) inState(mwc *admissionregistrationv1.MutatingWebhookConfiguration, entries []string, want webhookState) bool {
	byName := map[string]*admissionregistrationv1.MutatingWebhook{}
	for i := range mwc.Webhooks {
		byName[mwc.Webhooks[i].Name] = &mwc.Webhooks[i]
	}
	for _, name := range entries {
		w := byName[name]
		if !apiequality.Semantic.DeepEqual(w.Rules, want.rules) ||
			!apiequality.Semantic.DeepEqual(w.NamespaceSelector, s.opts.NamespaceSelector) ||
			!slices.Contains(w.MatchConditions, admissionregistrationv1.MatchCondition{Name: ConditionName, Expression: want.workloadCondition()}) {
			return false
		}
		sw, ok := byName[ScaleEntryPrefix+name]
		if !ok || !apiequality.Semantic.DeepEqual(*sw, scaleEntry(w, want)) {
			return false
		}
	}
	return true
}

// scaleConditions are the matchConditions of a scale entry next to an entry with conds: the
// entry's own (the manifests'), then ConditionName with cond.
func scaleConditions(conds []admissionregistrationv1.MatchCondition, cond string) []admissionregistrationv1.MatchCondition {
	out := slices.DeleteFunc(slices.Clone(conds), func(c admissionregistrationv1.MatchCondition) bool { return c.Name == ConditionName })
	return append(out, admissionregistrationv1.MatchCondition{Name: ConditionName, Expression: cond})
}

// scaleEntry is the scale entry next to the workload entry w in state want: w's fields
// (w is live, so they are the API server's defaults where the manifests left them out) but
// for its name, rules, namespaceSelector and matchConditions.
func scaleEntry(w *admissionregistrationv1.MutatingWebhook, want webhookState) admissionregistrationv1.MutatingWebhook {
	e := w.DeepCopy()
	e.Name = ScaleEntryPrefix + w.Name
	e.Rules, e.NamespaceSelector = want.scaleRules, want.scaleNamespaces
	e.MatchConditions = scaleConditions(w.MatchConditions, want.condition)
	return *e
}

// applyConfiguration is the apply configuration of w: an apply configuration has the JSON
// of the type it configures.
func applyConfiguration(w admissionregistrationv1.MutatingWebhook) (*admissionregistrationv1ac.MutatingWebhookApplyConfiguration, error) {
	raw, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	out := &admissionregistrationv1ac.MutatingWebhookApplyConfiguration{}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, err
	}
	return out, nil
}

// setWebhook makes the workload entries of the webhook configuration want, applying them only
// when they differ; it reports whether it wrote. The configuration must exist: an apply would
// otherwise create one without a clientConfig.
func (s *Syncer) setWebhook(ctx context.Context, want webhookState) (bool, error) {
	mwcs := s.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	mwc, err := s.webhookConfiguration(ctx)
	if err != nil {
		return false, fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", s.opts.WebhookConfiguration, err)
	}
	entries := workloadEntries(mwc, s.opts.WebhookKinds)
	if len(entries) == 0 {
		return false, fmt.Errorf("MutatingWebhookConfiguration %s has no webhook whose rules name a bounded workload resource", s.opts.WebhookConfiguration)
	}
	if s.inState(mwc, entries, want) {
		return false, nil
	}
	cfg := admissionregistrationv1ac.MutatingWebhookConfiguration(s.opts.WebhookConfiguration)
	for _, live := range mwc.Webhooks {
		if !slices.Contains(entries, live.Name) {
			continue
		}
		w := admissionregistrationv1ac.MutatingWebhook().WithName(live.Name).
			WithNamespaceSelector(labelSelector(s.opts.NamespaceSelector)).
			WithMatchConditions(admissionregistrationv1ac.MatchCondition().WithName(ConditionName).WithExpression(want.workloadCondition()))
		for _, r := range want.rules {
			w.WithRules(admissionregistrationv1ac.RuleWithOperations().
				WithOperations(r.Operations...).WithAPIGroups(r.APIGroups...).WithAPIVersions(r.APIVersions...).
				WithResources(r.Resources...).WithScope(*r.Scope))
		}
		sw, err := applyConfiguration(scaleEntry(&live, want))
		if err != nil {
			return false, fmt.Errorf("the scale entry next to %s: %w", live.Name, err)
		}
		cfg.WithWebhooks(w, sw)
	}
	if _, err := mwcs.Apply(ctx, cfg, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		return false, fmt.Errorf("applying the workload webhooks of MutatingWebhookConfiguration %s: %w", s.opts.WebhookConfiguration, err)
	}
	return true, nil
}

func labelSelector(ls *metav1.LabelSelector) *metav1ac.LabelSelectorApplyConfiguration {
	out := metav1ac.LabelSelector()
	if ls == nil {
		return out
	}
	if len(ls.MatchLabels) > 0 {
		out.WithMatchLabels(ls.MatchLabels)
	}
	for _, e := range ls.MatchExpressions {
		out.WithMatchExpressions(metav1ac.LabelSelectorRequirement().WithKey(e.Key).WithOperator(e.Operator).WithValues(e.Values...))
	}
	return out
}

// webhookConfiguration is the live configuration: from the watch when it runs, else from the
// API server.
func (s *Syncer) webhookConfiguration(ctx context.Context) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	name := s.opts.WebhookConfiguration
	if st := s.stores["MutatingWebhookConfiguration/"+name]; st != nil {
		obj, ok, err := st.GetByKey(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, apierrors.NewNotFound(admissionregistrationv1.Resource("mutatingwebhookconfigurations"), name)
		}
		return obj.(*admissionregistrationv1.MutatingWebhookConfiguration), nil
	}
	return s.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
}

// containsKind reports whether kinds holds k's resource.
func containsKind(kinds []policy.WorkloadKind, k policy.WorkloadKind) bool {
	return slices.ContainsFunc(kinds, func(o policy.WorkloadKind) bool { return o.GroupResource() == k.GroupResource() })
}
