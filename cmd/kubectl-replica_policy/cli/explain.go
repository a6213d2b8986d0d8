package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// ExplainOptions are explain's.
type ExplainOptions struct {
	ManifestOptions
	Output string
	genericiooptions.IOStreams
}

// explainHelp is explain's help, the command without its options (root.go joins them).
var explainHelp = cobra.Command{
	Use:   "explain --policy FILE -f PATH...",
	Short: "Show, rule by rule, why each workload and HPA gets its decision",
	Long: `Explain shows, for each bounded workload in the manifests, every rule of the policy in
order (the default last): whether it matched and, if not, which matchers did not
(namespaces, kinds, namespaceSelector, selector), or what it needed that the input lacks. The
deciding rule is marked with an arrow; rules after it are shown too. Then the deciding
rule's bounds and the result, as check gives it.

A HorizontalPodAutoscaler, or a KEDA ScaledObject, is decided by the rules for its
scaleTargetRef workload: those rules are shown, evaluated with the target's kind and labels
(unknown when the input does not hold the target), then a result line for each result check
gives it (a ScaledObject's range shows its idleReplicaCount where set).

Inputs and flags are check's; -o json has an object for each result of check. Exit 0: it
explains, it does not judge (2 on bad input).`,
	Example: `  # Why did web fall through to the default?
  kubectl replica-policy explain -p policy.yaml -f deploy/web.yaml

  # The same as JSON, for a script
  kubectl replica-policy explain -p policy.yaml -f deploy/ -o json`,
}

func (o *ExplainOptions) addFlags(fs *pflag.FlagSet) {
	o.ManifestOptions.addFlags(fs)
	fs.StringVarP(&o.Output, "output", "o", outputText, "output format: text, json")
}

// Validate checks the flags.
func (o *ExplainOptions) Validate() error {
	if err := o.ManifestOptions.Validate(); err != nil {
		return err
	}
	if o.Output != outputText && o.Output != outputJSON {
		return fmt.Errorf("--output %q: must be text or json", o.Output)
	}
	return nil
}

// Run explains each bounded object.
func (o *ExplainOptions) Run() error {
	snap, targets, err := o.load(o.In)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		// Exit 0 (it explains), but never silently: the input holds objects, none of them
		// a workload or an autoscaler that the policy bounds.
		fmt.Fprintln(o.ErrOut, "note: the input holds no Deployment, StatefulSet, ReplicaSet, HorizontalPodAutoscaler or ScaledObject: nothing to explain")
	}
	if o.Output == outputJSON {
		err = writeExplainJSON(o.Out, snap, targets)
	} else {
		for i, t := range targets {
			if i > 0 {
				fmt.Fprintln(o.Out)
			}
			writeExplanation(o.Out, t, trace(snap, t), Judge(snap, t))
		}
	}
	if err != nil {
		return err
	}
	for _, t := range targets {
		if t.Invalid != "" {
			return &exitError{code: ExitError, err: fmt.Errorf("%s:%d: %s %q: the API server would refuse it: see its result", t.File, t.Line, t.Kind(), t.Name())}
		}
	}
	return nil
}

// trace is the rule-by-rule evaluation for t's subject (an autoscaler's target workload);
// empty for an autoscaler whose target is of no bounded kind, and for an object that is
// not judged (refused by the API server, or of an apiVersion it does not serve), for
// which no rule is evaluated.
func trace(snap *policy.Snapshot, t Target) policy.Trace {
	if (t.Autoscaler != nil && !t.Autoscaler.TargetBounded) || t.Invalid != "" || t.Unserved != "" {
		return policy.Trace{}
	}
	return snap.Explain(t.Subject)
}

func writeExplanation(w io.Writer, t Target, tr policy.Trace, fs []Finding) {
	f := fs[0]
	if t.Invalid != "" || t.Unserved != "" {
		fmt.Fprintf(w, "%s%s: not judged: no rule is evaluated\n  result: %s: %s\n", f.where(), f.object(), f.Result, f.Message)
		return
	}
	if a := t.Autoscaler; a != nil {
		if !a.TargetBounded {
			fmt.Fprintf(w, "%s%s: range %s, target %s %q\n", f.where(), f.object(), a.Range, t.Subject.Kind, t.Subject.Name)
			fmt.Fprintf(w, "  its target's kind %s (apiVersion %q) is not bounded: no rule is evaluated\n", t.Subject.Kind, a.TargetAPIVersion)
		} else {
			labels := "its labels from the input"
			switch {
			case t.Subject.LabelsUnknown && t.File == "":
				labels = "not in the cluster: its labels are unknown"
			case t.Subject.LabelsUnknown:
				labels = "not in the input: its labels are unknown"
			}
			fmt.Fprintf(w, "%s%s: range %s, decided by the rules for its target %s %q (%s)\n", f.where(), f.object(), a.Range, t.Subject.Kind, t.Subject.Name, labels)
		}
	} else if t.Replicas == nil {
		fmt.Fprintf(w, "%s%s: %s omitted: 1, the API server's default\n", f.where(), f.object(), t.Field)
	} else {
		fmt.Fprintf(w, "%s%s: %s %d\n", f.where(), f.object(), t.Field, f.Value)
	}
	if tr.Exempt {
		fmt.Fprintf(w, "  namespace %q is exempt: no rule is evaluated\n", t.Subject.Namespace)
	}
	if tr.Owned {
		fmt.Fprintf(w, "  %sowned by %s %q, which is bounded instead: no rule is evaluated\n", targetPrefix(t), t.Subject.Owner.Kind, t.Subject.Owner.Name)
	}
	width := 0
	for _, rt := range tr.Rules {
		width = max(width, len(rt.Rule.Name))
	}
	decided := false
	for i, rt := range tr.Rules {
		mark := "   "
		if rt.Decides {
			mark = " → "
		}
		fmt.Fprintf(w, "%s%2d. %-*s  %s\n", mark, i+1, width, rt.Rule.Name, ruleVerdict(rt, t, decided))
		decided = decided || rt.Decides
	}
	if !tr.Exempt && !tr.Owned && len(tr.Rules) == 0 && (t.Autoscaler == nil || t.Autoscaler.TargetBounded) {
		fmt.Fprintln(w, "  the policy has no rules and no default")
	}
	if r := f.Rule(); r != nil {
		fmt.Fprintf(w, "  decided by %q: bounds %s, action %s\n", r.Name, r.Bounds, r.Action)
	} else if f.Verdict.Outcome == policy.OutcomeNoRule && len(tr.Rules) > 0 {
		fmt.Fprintln(w, "  no rule matched and the policy has no default")
	}
	for _, f := range fs {
		fmt.Fprintf(w, "  result: %s: %s\n", f.Result, f.Message)
	}
}

// targetPrefix is "its target Deployment "web" " for an autoscaler, else nothing.
func targetPrefix(t Target) string {
	if t.Autoscaler == nil {
		return ""
	}
	return fmt.Sprintf("its target %s %q is ", t.Subject.Kind, t.Subject.Name)
}

// ruleVerdict says how one rule fared: "matches (...)", "no: ...", "cannot tell: ...".
func ruleVerdict(rt policy.RuleTrace, t Target, decidedBefore bool) string {
	subj := t.Subject
	switch {
	case rt.Matched:
		var parts []string
		for _, m := range rt.Matchers {
			parts = append(parts, string(m.Matcher)+" "+m.Spec)
		}
		s := "matches everything"
		if len(parts) > 0 {
			s = "matches: " + strings.Join(parts, "; ")
		}
		if decidedBefore {
			s += " (not used: an earlier rule decides)"
		}
		return s
	case rt.Missing != policy.MissingNothing:
		for _, m := range rt.Matchers {
			if m.Unknown {
				return fmt.Sprintf("cannot tell: %s %s needs the %s, which the input lacks", m.Matcher, m.Spec, whoseLabels(m.Matcher, t))
			}
		}
	}
	var why []string
	for _, m := range rt.Failed() {
		switch m.Matcher {
		case policy.MatcherNamespaces:
			why = append(why, fmt.Sprintf("namespaces [%s] do not include %q", m.Spec, subj.Namespace))
		case policy.MatcherKinds:
			why = append(why, fmt.Sprintf("kinds [%s] do not include %s", m.Spec, policy.KindName(subj.Group, subj.Kind)))
		default:
			why = append(why, fmt.Sprintf("%s %s does not match the %s {%s}", m.Matcher, m.Spec, whoseLabels(m.Matcher, t), labels.Set(labelsOf(m.Matcher, subj)).String()))
		}
	}
	return "no: " + strings.Join(why, "; ")
}

func whoseLabels(m policy.Matcher, t Target) string {
	switch {
	case m == policy.MatcherNamespaceSelector:
		return fmt.Sprintf("labels of namespace %q", t.Subject.Namespace)
	case t.Autoscaler != nil:
		return fmt.Sprintf("labels of its target %s %q", t.Subject.Kind, t.Subject.Name)
	}
	return "workload's labels"
}

func labelsOf(m policy.Matcher, subj policy.Subject) map[string]string {
	if m == policy.MatcherNamespaceSelector {
		return subj.NamespaceLabels
	}
	return subj.Labels
}

// The -o json document of explain.
type explainJSON struct {
	Objects []explainObjectJSON `json:"objects"`
}

type explainObjectJSON struct {
	jsonResult
	Exempt bool            `json:"exempt"`
	Owned  bool            `json:"owned"`
	Rules  []ruleTraceJSON `json:"rules"`
}

type ruleTraceJSON struct {
	Name     string        `json:"name"`
	Matched  bool          `json:"matched"`
	Missing  string        `json:"missing,omitempty"`
	Decides  bool          `json:"decides"`
	Matchers []matcherJSON `json:"matchers"`
}

type matcherJSON struct {
	Matcher string `json:"matcher"`
	Spec    string `json:"spec"`
	Matched bool   `json:"matched"`
	Unknown bool   `json:"unknown,omitempty"`
}

func writeExplainJSON(w io.Writer, snap *policy.Snapshot, targets []Target) error {
	doc := explainJSON{Objects: []explainObjectJSON{}}
	for _, t := range targets {
		tr := trace(snap, t)
		rules := []ruleTraceJSON{}
		for _, rt := range tr.Rules {
			r := ruleTraceJSON{Name: rt.Rule.Name, Matched: rt.Matched, Missing: rt.Missing.String(), Decides: rt.Decides, Matchers: []matcherJSON{}}
			for _, m := range rt.Matchers {
				r.Matchers = append(r.Matchers, matcherJSON{Matcher: string(m.Matcher), Spec: m.Spec, Matched: m.Matched, Unknown: m.Unknown})
			}
			rules = append(rules, r)
		}
		// One object per result of check: an HPA with both ends outside its bounds is two.
		for _, f := range Judge(snap, t) {
			doc.Objects = append(doc.Objects, explainObjectJSON{jsonResult: newJSONResult(f), Exempt: tr.Exempt, Owned: tr.Owned, Rules: rules})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
