package native

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

// CEL's matches() is RE2, as Go's regexp: the translated glob must accept exactly what
// path.Match accepts, on namespace-like names.
func TestGlobRegexpAgreesWithPathMatch(t *testing.T) {
	globs := []string{"team-*", "*-prod", "a?c", "[abc]x", "[^abc]x", "[a-c]*", "[^a-c]?", `\*x`, `a\?`, "*", "?", "t*m-[0-9]",
		`[\-]x`, `[\]]`, "a.b*", "a+b", "(x)*", "$*", "é*"}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "abcx-09.+()$*?]é"
	names := []string{"", "team-1", "x-prod", "abc", "ax", "dx", "-x", "]", "*x", "a?", "a.bc", "axb", "ab", "a+b", "(x)", "$", "é1"}
	for range 3000 {
		n := make([]rune, rng.IntN(6))
		r := []rune(alphabet)
		for i := range n {
			n[i] = r[rng.IntN(len(r))]
		}
		names = append(names, string(n))
	}
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			t.Fatalf("test glob %q is invalid: %v", g, err)
		}
		re := regexp.MustCompile(globRegexp(g))
		for _, n := range names {
			want, _ := path.Match(g, n)
			if got := re.MatchString(n); got != want {
				t.Errorf("glob %q (regexp %s) on %q: %v, path.Match says %v", g, globRegexp(g), n, got, want)
			}
		}
	}
}

func TestCELText(t *testing.T) {
	sel := func(ls metav1.LabelSelector) string {
		s, err := policy.CompileSelector(&ls)
		if err != nil {
			t.Fatal(err)
		}
		return selectorTerm("L", s)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"quote", quote(`it's a \ "x"` + "\n\x00"), `'it\'s a \\ "x"\n\u0000'`},
		{"one name", namespacesTerm("ns", []string{"a"}, nil), "ns == 'a'"},
		{"names and globs", namespacesTerm("ns", []string{"a", "b"}, []string{"team-*", "*-prod", "t?m"}),
			`(ns in ['a', 'b'] || ns.startsWith('team-') || ns.endsWith('-prod') || ns.matches('^t[^/]m$'))`},
		{"glob class", globTerm("ns", "[^a-c]x*"), `ns.matches('^[^\\x{61}-\\x{63}]x[^/]*$')`},
		{"matchLabels", sel(metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}), `('env' in L && L['env'] == 'prod')`},
		{"In", sel(metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "In", Values: []string{"web", "api"}}}}),
			`('app' in L && L['app'] in ['api', 'web'])`},
		{"NotIn holds for an absent key", sel(metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "NotIn", Values: []string{"db"}}}}),
			`(!('app' in L) || L['app'] != 'db')`},
		{"Exists and DoesNotExist", sel(metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "a.io/x", Operator: "Exists"}, {Key: "b", Operator: "DoesNotExist"}}}), `('a.io/x' in L && !('b' in L))`},
		{"empty selector matches all", sel(metav1.LabelSelector{}), "true"},
		{"and drops true, false wins", and("a", "true", "", "b"), "(a && b)"},
		{"and with false", and("a", "false"), "false"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tc.name, tc.got, tc.want)
		}
	}
}

func compileYAML(t *testing.T, doc string, kinds []policy.WorkloadKind, opts Options) *Result {
	t.Helper()
	snap, err := policy.Load([]byte(doc), policy.Options{AlwaysExempt: []string{policy.DefaultNamespace}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Compile(snap, kinds, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// newCompiler is the compiler of the policy doc, its rules read, for testing its parts.
func newCompiler(t *testing.T, doc string) *compiler {
	t.Helper()
	snap, err := policy.Load([]byte(doc), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &compiler{snap: snap, kinds: policy.BuiltinWorkloadKinds}
	c.readRules()
	return c
}

func variableOf(vars []admissionregistrationv1.Variable, name string) string {
	for _, v := range vars {
		if v.Name == name {
			return v.Expression
		}
	}
	return ""
}

const header = "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\n"

func TestCompile(t *testing.T) {
	pol := header + `exemptNamespaces: [kube-system, "tmp-*"]
default: {maxReplicas: 50, action: warn}
rules:
- {name: web, namespaces: [prod], selector: {matchLabels: {app: web}}, minReplicas: 2, maxReplicas: 10}
- {name: db, kinds: [StatefulSet, Rollout.argoproj.io], minReplicas: 3, maxReplicas: 7, allowZero: true, action: deny}
- {name: gold, namespaceSelector: {matchLabels: {tier: gold}}, maxReplicas: 4}
`
	res := compileYAML(t, pol, policy.BuiltinWorkloadKinds, Options{ClampWarnings: true})

	t.Run("the clamp notice only with ClampWarnings", func(t *testing.T) {
		quiet := compileYAML(t, pol, policy.BuiltinWorkloadKinds, Options{})
		if quiet.ClampNotice != nil || quiet.ClampNoticeBinding != nil || len(quiet.Objects()) != len(res.Objects())-2 {
			t.Errorf("without ClampWarnings: notice %v, %d objects against %d with it", quiet.ClampNotice != nil, len(quiet.Objects()), len(res.Objects()))
		}
		if !slices.ContainsFunc(quiet.Notes, func(n string) bool {
			return strings.Contains(n, "returns no warning") && strings.Contains(n, "--clamp-warnings")
		}) {
			t.Errorf("without ClampWarnings, no note says a clamp is silent: %q", quiet.Notes)
		}
	})

	t.Run("objects, names and labels", func(t *testing.T) {
		var got []string
		for _, o := range res.Objects() {
			m := o.(metav1.ObjectMetaAccessor).GetObjectMeta()
			if m.GetLabels()[ManagedByLabel] != ManagedBy {
				t.Errorf("%s: labels %v", m.GetName(), m.GetLabels())
			}
			got = append(got, fmt.Sprintf("%T %s", o, m.GetName()))
		}
		want := "*v1.MutatingAdmissionPolicy replica-policy-clamp, *v1.MutatingAdmissionPolicyBinding replica-policy-clamp, " +
			"*v1.ValidatingAdmissionPolicy replica-policy-deny, *v1.ValidatingAdmissionPolicyBinding replica-policy-deny, " +
			"*v1.ValidatingAdmissionPolicy replica-policy-warn, *v1.ValidatingAdmissionPolicyBinding replica-policy-warn, " +
			"*v1.ValidatingAdmissionPolicy replica-policy-clamped, *v1.ValidatingAdmissionPolicyBinding replica-policy-clamped"
		if strings.Join(got, ", ") != want {
			t.Errorf("objects\n%s\nwant\n%s", strings.Join(got, ", "), want)
		}
		if res.WarnBinding.Spec.ValidationActions[0] != admissionregistrationv1.Warn || res.DenyBinding.Spec.ValidationActions[0] != admissionregistrationv1.Deny {
			t.Errorf("validation actions: warn %v, deny %v", res.WarnBinding.Spec.ValidationActions, res.DenyBinding.Spec.ValidationActions)
		}
		if a := res.ClampNoticeBinding.Spec.ValidationActions; len(a) != 2 || a[0] != admissionregistrationv1.Warn || a[1] != admissionregistrationv1.Audit {
			t.Errorf("clamp notice: validation actions %v, want Warn and Audit", a)
		}
		for _, name := range []string{"clampNotice", "bounds", "ruleName", "message"} {
			if variableOf(res.Clamp.Spec.Variables, name) != "" {
				t.Errorf("the MutatingAdmissionPolicy carries the message variable %s", name)
			}
		}
		if res.Clamp.Spec.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy || *res.Clamp.Spec.FailurePolicy != admissionregistrationv1.Ignore {
			t.Errorf("clamp: reinvocation %s, failure policy %s", res.Clamp.Spec.ReinvocationPolicy, *res.Clamp.Spec.FailurePolicy)
		}
	})

	t.Run("rules in order, default last", func(t *testing.T) {
		vars := res.Clamp.Spec.Variables
		// The candidates of the rules, a chain of conditionals read up to the first that
		// matches, a rule a line, the default's index last.
		want := "((request.namespace == 'prod') && (variables.scale || ('app' in variables.labels && variables.labels['app'] == 'web'))) ? 0 :\n" +
			"(variables.kind == 'StatefulSet') ? 1 :\n('tier' in variables.nsLabels && variables.nsLabels['tier'] == 'gold') ? 2 :\n3"
		for name, want := range map[string]string{
			"first":     "",
			"rule":      want,
			"unknown":   "variables.scale && variables.rule in [0]",
			"min":       "(variables.rule >= 0 ? [2, 3, -1, -1][variables.rule] : -1)",
			"max":       "(variables.rule >= 0 ? [10, 7, 4, 50][variables.rule] : -1)",
			"allowZero": "(variables.rule >= 0 ? [false, true, false, false][variables.rule] : false)",
			"action":    "(variables.rule >= 0 ? ['clamp', 'deny', 'clamp', 'warn'][variables.rule] : '')",
		} {
			if got := variableOf(vars, name); got != want {
				t.Errorf("%s\ngot  %s\nwant %s", name, got, want)
			}
		}
		if variableOf(vars, "message") != "" || variableOf(res.Deny.Spec.Variables, "message") == "" {
			t.Errorf("the message belongs to the validating policies only")
		}
	})

	t.Run("match constraints and conditions", func(t *testing.T) {
		b, _ := json.Marshal(res.Deny.Spec.MatchConstraints.ResourceRules)
		want := `[{"operations":["CREATE","UPDATE"],"apiGroups":["apps"],"apiVersions":["v1"],"resources":["deployments","statefulsets","replicasets"],"scope":"Namespaced"},` +
			`{"operations":["UPDATE"],"apiGroups":["apps"],"apiVersions":["v1"],"resources":["deployments/scale","statefulsets/scale"],"scope":"Namespaced"}]`
		if string(b) != want {
			t.Errorf("resource rules\n%s\nwant (no replicasets/scale: a ReplicaSet may be owned)\n%s", b, want)
		}
		// One condition a policy: the API server evaluates every condition of a policy.
		for _, p := range []struct {
			conds []admissionregistrationv1.MatchCondition
			name  string
		}{{res.Clamp.Spec.MatchConditions, "outside-clamp-bounds"}, {res.Deny.Spec.MatchConditions, "replicas-changed"},
			{res.Warn.Spec.MatchConditions, "replicas-changed"}, {res.ClampNotice.Spec.MatchConditions, "replicas-changed"}} {
			if len(p.conds) != 1 || p.conds[0].Name != p.name {
				t.Fatalf("match conditions %+v, want one named %s", p.conds, p.name)
			}
			e := p.conds[0].Expression
			// The MutatingAdmissionPolicy's carries the chain (it re-encodes the object whenever
			// it runs); a validating policy's leaves it to the variables, written once.
			changed, chain := "(request.operation != 'UPDATE' || object.spec.?replicas.orValue((request.?subResource.orValue('') == 'scale') ? 0 : 1) != oldObject.spec.?replicas.orValue((request.?subResource.orValue('') == 'scale') ? 0 : 1)) &&\n", "(request.namespace == 'prod')"
			if p.name == "outside-clamp-bounds" {
				changed = "].exists(r, ((request.operation != 'UPDATE' || r != oldObject.spec.?replicas.orValue((request.?subResource.orValue('') == 'scale') ? 0 : 1)) &&\n"
			} else if strings.Contains(e, chain) {
				t.Errorf("%s: %s\nrepeats the rule chain of the variables", p.name, e)
			}
			for _, part := range []string{
				"(!(request.namespace.startsWith('tmp-')) &&\n",
				changed,
				"o.?controller.orValue(false) && (o.apiVersion.startsWith('apps/') && o.kind in ['Deployment', 'StatefulSet', 'ReplicaSet'])",
			} {
				if !strings.Contains(e, part) {
					t.Errorf("%s: %s\nlacks %s", p.name, e, part)
				}
			}
		}
	})

	t.Run("the bindings leave out the exempt namespaces", func(t *testing.T) {
		for _, m := range []*admissionregistrationv1.MatchResources{res.ClampBinding.Spec.MatchResources, res.DenyBinding.Spec.MatchResources,
			res.WarnBinding.Spec.MatchResources, res.ClampNoticeBinding.Spec.MatchResources} {
			b, _ := json.Marshal(m)
			// The glob tmp-* stays in the matchCondition.
			if want := `{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","replica-policy-system"]}]}}`; string(b) != want {
				t.Errorf("binding's matchResources\n%s\nwant\n%s", b, want)
			}
		}
	})

	t.Run("the conditions decide by first match", func(t *testing.T) {
		c := newCompiler(t, header+`default: {maxReplicas: 10}
rules:
- {name: a, namespaces: [x], maxReplicas: 3, action: deny}
- {name: b, namespaces: ["y-*"], selector: {matchLabels: {app: web}}, minReplicas: 2, maxReplicas: 5, allowZero: true}
- {name: c, namespaces: [z], minReplicas: 1, maxReplicas: 1, action: warn}
`)
		for p, want := range map[purpose]string{
			purposeClamp: "((request.namespace == 'x') ? (false) :\n  ((request.namespace.startsWith('y-')) && ((request.?subResource.orValue('') == 'scale') || ('app' in object.metadata.?labels.orValue({}) && object.metadata.?labels.orValue({})['app'] == 'web'))) ? " +
				"(!(request.?subResource.orValue('') == 'scale') && ((r >= 1 && r < 2) || r > 5)) :\n  (request.namespace == 'z') ? (false) :\n  (r > 10))",
			purposeDeny: "((request.namespace == 'x') && (r > 3))",
			purposeNotice: "((request.namespace == 'x') ? (false) :\n  ((request.namespace.startsWith('y-')) && ((request.?subResource.orValue('') == 'scale') || ('app' in object.metadata.?labels.orValue({}) && object.metadata.?labels.orValue({})['app'] == 'web'))) ? " +
				"(!(request.?subResource.orValue('') == 'scale') && (r == 5 || r == 2)) :\n  (request.namespace == 'z') ? (false) :\n  (r == 10))",
			purposeWarn: "((request.namespace == 'x') ? (false) :\n  ((request.namespace.startsWith('y-')) && ((request.?subResource.orValue('') == 'scale') || ('app' in object.metadata.?labels.orValue({}) && object.metadata.?labels.orValue({})['app'] == 'web'))) ? (false) :\n  ((request.namespace == 'z') && ((r >= 0 && r < 1) || r > 1)))",
		} {
			if got := c.due(p); got != want {
				t.Errorf("%s\ngot  %s\nwant %s", p.name, got, want)
			}
		}
		// A clamp rule after one that decides every request can never act: no clamp policy
		// whose condition could never hold.
		shadowed := compileYAML(t, header+"rules:\n- {name: all, maxReplicas: 5, action: warn}\n- {name: x, namespaces: [\"team-*\"], maxReplicas: 3}\n", policy.BuiltinWorkloadKinds, Options{Name: "x"})
		if shadowed.Clamp != nil || shadowed.ClampNotice != nil || shadowed.Warn == nil || !slices.Contains(shadowed.Notes, "no x-clamp is emitted: no clamp rule can act on a write the native policies see (its kinds are not compiled, or its namespaces are exempt or decided by earlier rules)") {
			t.Errorf("a shadowed clamp rule: clamp %t, notice %t, warn %t, notes %q", shadowed.Clamp != nil, shadowed.ClampNotice != nil, shadowed.Warn != nil, shadowed.Notes)
		}
		// A matchCondition cannot read namespace labels: a rule with a namespaceSelector may
		// or may not decide, so the condition holds if it would or the rules after it would.
		u := newCompiler(t, header+`default: {maxReplicas: 10, action: warn}
rules:
- {name: a, namespaces: [x], namespaceSelector: {matchLabels: {env: dev}}, maxReplicas: 3}
- {name: b, namespaceSelector: {matchLabels: {env: prod}}, maxReplicas: 5, action: warn}
`)
		for p, want := range map[purpose]string{
			purposeClamp: `((request.namespace == 'x') && (r > 3))`,
			purposeWarn:  `((r > 5) || (r > 10))`,
		} {
			if got := u.due(p); got != want {
				t.Errorf("%s with namespaceSelectors\ngot  %s\nwant %s", p.name, got, want)
			}
		}
	})

	t.Run("where each policy may act", func(t *testing.T) {
		c := newCompiler(t, header+`exemptNamespaces: [kube-system, "tmp-*"]
default: {maxReplicas: 10}
rules:
- {name: a, namespaces: [x, kube-system], maxReplicas: 3, action: deny}
- {name: b, namespaces: ["y-*"], selector: {matchLabels: {app: web}}, minReplicas: 2, maxReplicas: 5}
- {name: c, namespaces: [z, w], maxReplicas: 1, action: warn}
- {name: d, namespaces: [w], kinds: [Deployment], maxReplicas: 2, action: deny}
- {name: e, namespaces: [v], selector: {matchLabels: {app: db}}, maxReplicas: 2, action: deny}
- {name: f, namespaces: ["dev-*", v], maxReplicas: 4, action: warn}
- {name: g, namespaces: [u], selector: {matchLabels: {app: db}}, maxReplicas: 2}
- {name: i, namespaces: [t], namespaceSelector: {matchLabels: {tier: gold}}, maxReplicas: 2}
- {name: h, namespaces: [u, t], maxReplicas: 3, action: deny}
`)
		for _, tc := range []struct {
			p    purpose
			want scope
		}{
			// Only where a deny rule is: not w, which rule c (warn, every request) decides first;
			// not the exempt kube-system; u and t, where the clamp rules before h (a selector,
			// a namespaceSelector) may or may not match.
			{purposeDeny, scope{in: []string{"t", "u", "v", "x"}}},
			// Everywhere (the default clamps) but the exempt namespaces and those that rules of
			// other actions decide whole: x (a), z and w (c), v (e may match first, f decides
			// the rest).
			{purposeClamp, scope{out: []string{"kube-system", "v", "w", "x", "z"}}},
			{purposeNotice, scope{out: []string{"kube-system", "v", "w", "x", "z"}}},
			// A glob: the matchCondition names the namespaces; the binding leaves out x.
			{purposeWarn, scope{cel: `(request.namespace in ['z', 'w', 'v'] || request.namespace.startsWith('dev-'))`, out: []string{"kube-system", "t", "u", "x"}}},
		} {
			if got := c.scope(tc.p); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("%s: scope %+v, want %+v", tc.p.name, got, tc.want)
			}
		}
		// A deny rule that a clamp rule before it shadows acts nowhere.
		shadowed := newCompiler(t, header+"rules:\n- {name: a, namespaces: [x], maxReplicas: 3}\n- {name: b, namespaces: [x], maxReplicas: 2, action: deny}\n")
		if got := shadowed.scope(purposeDeny); got.cel != "false" || got.in != nil || got.out != nil {
			t.Errorf("shadowed deny rule: scope %+v, want a matchCondition that is false", got)
		}
		if got := shadowed.scope(purposeClamp).matchResources(); got == nil || fmt.Sprint(got.NamespaceSelector.MatchExpressions) != "[{kubernetes.io/metadata.name In [x]}]" {
			t.Errorf("clamp binding of a policy whose only clamp rule names x: %+v", got)
		}
	})

	t.Run("what the webhook still decides", func(t *testing.T) {
		want := `!((request.resource.group + '/' + request.resource.resource) in ['apps/deployments', 'apps/statefulsets', 'apps/replicasets']) || ` +
			`((request.?subResource.orValue('') == 'scale') && ((request.resource.group + '/' + request.resource.resource) in ['apps/replicasets'] || (request.namespace == 'prod')))`
		if res.WebhookMatchCondition != want {
			t.Errorf("webhook match condition\ngot  %s\nwant %s", res.WebhookMatchCondition, want)
		}
		// A selector rule without namespaces reaches only the namespaces that no earlier rule
		// without a selector decides; a namespaceSelector rule may or may not decide first.
		shadow := compileYAML(t, header+`rules:
- {name: a, namespaces: [a, "a-*"], maxReplicas: 3}
- {name: gold, namespaceSelector: {matchLabels: {tier: gold}}, maxReplicas: 4}
- {name: db, selector: {matchLabels: {app: db}}, maxReplicas: 5}
- {name: b, namespaces: [b], maxReplicas: 6}
`, policy.BuiltinWorkloadKinds, Options{})
		want = `!((request.resource.group + '/' + request.resource.resource) in ['apps/deployments', 'apps/statefulsets', 'apps/replicasets']) || ` +
			`((request.?subResource.orValue('') == 'scale') && ((request.resource.group + '/' + request.resource.resource) in ['apps/replicasets'] || ` +
			"((request.namespace == 'a' || request.namespace.startsWith('a-')) ? (false) :\n  (true))))"
		if shadow.WebhookMatchCondition != want {
			t.Errorf("webhook match condition, a selector rule after a rule without\ngot  %s\nwant %s", shadow.WebhookMatchCondition, want)
		}
		lines := strings.Join(res.Webhook, "\n")
		for _, part := range []string{
			"/scale writes of replicasets: a ReplicaSet may be owned",
			`/scale writes that rule "web" may decide (namespaces prod): its selector needs the workload's labels`,
			`writes of Rollout.argoproj.io (named by rule "db"): not a compiled kind`,
		} {
			if !strings.Contains(lines, part) {
				t.Errorf("webhook lines\n%s\nlack %q", lines, part)
			}
		}
	})
}

func TestCompileOnlyWhatActionsNeed(t *testing.T) {
	res := compileYAML(t, header+"rules:\n- {name: a, maxReplicas: 3, action: deny}\n", policy.BuiltinWorkloadKinds, Options{Name: "x"})
	if res.Clamp != nil || res.Warn != nil || res.Deny == nil || res.Deny.Name != "x-deny" {
		t.Errorf("a deny-only policy: clamp %v, warn %v, deny %v", res.Clamp != nil, res.Warn != nil, res.Deny != nil)
	}
	// A rule that matches every request is always the first that matches.
	if got := variableOf(res.Deny.Spec.Variables, "rule"); got != "0" || variableOf(res.Deny.Spec.Variables, "first") != "" {
		t.Errorf("rule without a default: %s", got)
	}
	if got := variableOf(res.Deny.Spec.Variables, "unknown"); got != "" {
		t.Errorf("unknown without selector rules: %s, want no variable", got)
	}
	if got := variableOf(res.Deny.Spec.Variables, "out"); got != "variables.rule >= 0 && variables.replicas >= 0 && variables.want != variables.replicas" {
		t.Errorf("out without selector rules: %s", got)
	}
	if len(res.Rules) != 1 || res.Rules[0] != "0 a: every workload: deny [0, 3]; enforced by x-deny" {
		t.Errorf("the rules for a reviewer: %q", res.Rules)
	}
	for _, unused := range []string{"labels", "nsLabels", "allowZero", "clampNotice"} {
		if got := variableOf(res.Deny.Spec.Variables, unused); got != "" {
			t.Errorf("a policy that reads no %s has the variable: %s", unused, got)
		}
	}
	custom := compileYAML(t, header+"rules:\n- {name: w, kinds: [Widget.example.com], maxReplicas: 3}\n", policy.BuiltinWorkloadKinds, Options{})
	if n := len(custom.Objects()); n != 0 || !slices.Contains(custom.Notes, "nothing is emitted: no rule can act on a write of a compiled kind") {
		t.Errorf("a policy whose only rule names a kind that is not compiled emits %d objects (want none), notes %q", n, custom.Notes)
	}
	// A deny rule only in an exempt namespace can never act: no deny policy whose condition
	// is false, and a note says why.
	exempt := compileYAML(t, header+"exemptNamespaces: [legacy]\nrules:\n- {name: old, namespaces: [legacy], maxReplicas: 3, action: deny}\n- {name: all, maxReplicas: 9}\n",
		policy.BuiltinWorkloadKinds, Options{Name: "x", ClampWarnings: true})
	if exempt.Deny != nil || exempt.Clamp == nil || !slices.ContainsFunc(exempt.Notes, func(n string) bool { return strings.HasPrefix(n, "no x-deny is emitted: ") }) {
		t.Errorf("a deny rule that can never act: deny emitted %t, clamp %t, notes %q", exempt.Deny != nil, exempt.Clamp != nil, exempt.Notes)
	}
	// Each policy carries only the variables its expressions read.
	notice := exempt.ClampNotice.Spec.Validations[0]
	for name, p := range map[string]struct {
		vars []admissionregistrationv1.Variable
		expr string
	}{"clamp": {exempt.Clamp.Spec.Variables, clampPatch}, "notice": {exempt.ClampNotice.Spec.Variables, notice.Expression + " " + notice.MessageExpression}} {
		for _, v := range p.vars {
			readers := p.expr
			for _, o := range p.vars {
				readers += " " + o.Expression
			}
			if !regexp.MustCompile(`\bvariables\.` + v.Name + `\b`).MatchString(readers) {
				t.Errorf("%s: variable %s is read by nothing", name, v.Name)
			}
		}
	}
	if variableOf(exempt.ClampNotice.Spec.Variables, "message") != "" || variableOf(exempt.ClampNotice.Spec.Variables, "want") != "" {
		t.Errorf("the clamp notice carries the denial's variables: %+v", exempt.ClampNotice.Spec.Variables)
	}
	empty := compileYAML(t, header, policy.BuiltinWorkloadKinds, Options{})
	if len(empty.Objects()) != 0 {
		t.Errorf("an empty policy compiles to %d objects", len(empty.Objects()))
	}
	onlyDefault := compileYAML(t, header+"default: {maxReplicas: 5}\n", policy.BuiltinWorkloadKinds, Options{})
	if got := variableOf(onlyDefault.Clamp.Spec.Variables, "rule"); got != "0" {
		t.Errorf("a default alone: rule %s", got)
	}
}

// The autoscaler policies are compiled only when asked for: without Options.Autoscalers,
// Result says nothing of HPAs and ScaledObjects.
func TestCompileAutoscalersOptIn(t *testing.T) {
	doc := header + "rules:\n- {name: web, namespaces: [prod], selector: {matchLabels: {app: web}}, maxReplicas: 10}\n" +
		"- {name: dev, namespaces: [dev], maxReplicas: 5}\n- {name: all, maxReplicas: 20, action: deny}\n"
	without := compileYAML(t, doc, policy.BuiltinWorkloadKinds, Options{})
	with := compileYAML(t, doc, policy.BuiltinWorkloadKinds, Options{Autoscalers: true})
	if n := len(without.AutoscalerObjects()); n != 0 {
		t.Errorf("without Options.Autoscalers: %d autoscaler objects", n)
	}
	if got := len(with.AutoscalerObjects()); got != 6 || with.AutoscalerClamp == nil || with.AutoscalerDeny == nil || with.AutoscalerWarn == nil {
		t.Errorf("with Options.Autoscalers: %d autoscaler objects, want the clamp, deny and warn with their bindings", got)
	}
	if !reflect.DeepEqual(without.Objects(), with.Objects()) {
		t.Error("Options.Autoscalers changes the workload policies")
	}
	for _, lines := range [][]string{without.Webhook, without.Notes} {
		if i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "HorizontalPodAutoscalers") }); i >= 0 {
			t.Errorf("without Options.Autoscalers, a line about autoscalers: %q", lines[i])
		}
	}
	if !slices.ContainsFunc(with.Webhook, func(l string) bool {
		return strings.Contains(l, `HorizontalPodAutoscalers and ScaledObjects whose target rule "web" may decide`)
	}) {
		t.Errorf("with Options.Autoscalers, no line says the webhook decides the autoscalers of rule web: %q", with.Webhook)
	}
}

// TestRuleChainPastMaxChain: past maxChain rules the deciding rule is the first true of
// lists (the parser limits nesting), with the default after it.
func TestRuleChainPastMaxChain(t *testing.T) {
	var b strings.Builder
	b.WriteString(header + "default: {maxReplicas: 9}\nrules:\n")
	for i := range maxChain + 1 {
		fmt.Fprintf(&b, "- {name: r%d, namespaces: [ns-%d], maxReplicas: 3}\n", i, i)
	}
	vars := compileYAML(t, b.String(), policy.BuiltinWorkloadKinds, Options{}).Clamp.Spec.Variables
	first := variableOf(vars, "first")
	if !strings.HasPrefix(first, "[\n  (request.namespace == 'ns-0'),\n") || !strings.HasSuffix(first, "].indexOf(true)") || strings.Contains(first, " ? ") {
		t.Errorf("first: %.200s", first)
	}
	if got, want := variableOf(vars, "rule"), fmt.Sprintf("variables.first >= 0 ? variables.first : %d", maxChain+1); got != want {
		t.Errorf("rule %s, want %s", got, want)
	}
}

func TestCompileCustomKinds(t *testing.T) {
	kinds := append(policy.BuiltinWorkloadKinds, policy.WorkloadKind{Group: "argoproj.io", Version: "v1alpha1", Kind: "Rollout", Resource: "rollouts"})
	res := compileYAML(t, header+"rules:\n- {name: r, kinds: [Rollout.argoproj.io], maxReplicas: 3}\n", kinds, Options{ClampWarnings: true})
	if got := variableOf(res.Clamp.Spec.Variables, "rule"); got != "(variables.kind == 'Rollout.argoproj.io') ? 0 :\n-1" {
		t.Errorf("rule: %s", got)
	}
	if got := variableOf(res.ClampNotice.Spec.Variables, "kindName"); !strings.Contains(got, "'argoproj.io/rollouts': 'Rollout'") {
		t.Errorf("kindName (messages name the kind alone): %s", got)
	}
	if !strings.Contains(res.Clamp.Spec.MatchConditions[0].Expression, "(o.apiVersion.startsWith('argoproj.io/') && o.kind == 'Rollout')") {
		t.Errorf("a Rollout's ReplicaSets are owned: %s", res.Clamp.Spec.MatchConditions[0].Expression)
	}
}

// bigPolicy has n rules of two namespaces (a name and a glob) and a selector each.
func bigPolicy(n int) string {
	var b strings.Builder
	b.WriteString(header + "rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "- {name: rule-%d, namespaces: [team-%d-*, ns-%d], selector: {matchLabels: {app: web-%d}}, maxReplicas: %d}\n", i, i, i, i, i%50+1)
	}
	return b.String()
}

func TestLimitsRefused(t *testing.T) {
	ok := compileYAML(t, bigPolicy(3000), policy.BuiltinWorkloadKinds, Options{})
	if ok.Size > MaxObjectBytes || ok.Size < 600_000 {
		t.Errorf("3,000 rules: %d bytes", ok.Size)
	}
	for _, v := range ok.Clamp.Spec.Variables {
		if len(v.Expression) > maxExpression {
			t.Errorf("variable %s: %d characters", v.Name, len(v.Expression))
		}
		if strings.Count(v.Expression, " + variables.rules") >= maxConcat {
			t.Errorf("variable %s concatenates %d lists", v.Name, strings.Count(v.Expression, " + ")+1)
		}
	}
	if ok.Cost > RuntimeCELCostBudget/2 {
		t.Errorf("3,000 rules: cost bound %d", ok.Cost)
	}

	snap, err := policy.Load([]byte(bigPolicy(7000)), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(snap, policy.BuiltinWorkloadKinds, Options{})
	var limit *LimitError
	if !errors.As(err, &limit) || !strings.Contains(err.Error(), "etcd's default request limit (1.5 MiB)") {
		t.Fatalf("7,000 rules: %v, want a LimitError about etcd's request limit", err)
	}

	long := make([]string, 6000)
	for i := range long {
		long[i] = fmt.Sprintf("namespace-%d", i)
	}
	snap, err = policy.Load([]byte(header+"rules:\n- {name: huge, namespaces: ["+strings.Join(long, ", ")+"], maxReplicas: 3}\n"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = Compile(snap, policy.BuiltinWorkloadKinds, Options{}); !errors.As(err, &limit) || !strings.Contains(err.Error(), `rule "huge" compiles to`) {
		t.Fatalf("a rule of 6,000 namespaces: %v, want a LimitError naming it", err)
	}
}
