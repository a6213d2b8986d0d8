package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// designExample is the example policy of docs/design.md ("The policy"), verbatim.
const designExample = `apiVersion: replicapolicy.io/v1alpha1
kind: ReplicaPolicy
exemptNamespaces: [kube-system, kube-public, kube-node-lease]  # never touched; the webhook's own namespace is always exempt
default:                  # optional: applies where no rule matches; absent = no bounds
  minReplicas: 1
  maxReplicas: 50
  action: clamp
rules:                    # evaluated top to bottom; the first rule that matches decides
- name: prod-web          # required, unique, DNS-1123 label
  namespaces: [prod, "team-*"]        # optional: names or shell-style globs
  namespaceSelector:                  # optional: metav1.LabelSelector on the Namespace's labels
    matchLabels: {env: prod}
  selector:                           # optional: metav1.LabelSelector on the workload's labels
    matchExpressions: [{key: app, operator: In, values: [web, api]}]
  minReplicas: 2          # optional, >= 0
  maxReplicas: 10         # optional, >= minReplicas; at least one of min/max is required
  allowZero: false        # optional: true lets a workload scale to 0 even when minReplicas > 0
  action: clamp           # clamp (default) | deny | warn
`

func TestParseDesignExample(t *testing.T) {
	p, errs := Parse([]byte(designExample))
	if len(errs) > 0 {
		t.Fatalf("Parse:\n%s", dumpErrs(errs))
	}
	if errs := p.Validate(); len(errs) > 0 {
		t.Fatalf("Validate:\n%s", dumpErrs(errs))
	}
	want := &ReplicaPolicy{
		APIVersion:       APIVersion,
		Kind:             Kind,
		ExemptNamespaces: []string{"kube-system", "kube-public", "kube-node-lease"},
		Default:          &BoundsSpec{MinReplicas: ptr.To[int32](1), MaxReplicas: ptr.To[int32](50), Action: ActionClamp},
		Rules: []Rule{{
			Name:       "prod-web",
			Namespaces: []string{"prod", "team-*"},
			NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"env": "prod"},
			},
			Selector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "In", Values: []string{"web", "api"}}},
			},
			BoundsSpec: BoundsSpec{MinReplicas: ptr.To[int32](2), MaxReplicas: ptr.To[int32](10), Action: ActionClamp},
		}},
	}
	if !reflect.DeepEqual(want, p) {
		g, _ := json.Marshal(p)
		w, _ := json.Marshal(want)
		t.Errorf("parsed policy\n got %s\nwant %s", g, w)
	}
	s, err := Load([]byte(designExample), Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := len(s.Rules()); got != 2 {
		t.Errorf("Rules() has %d entries, want prod-web and default", got)
	}
}

// TestParseAccepts covers documents that are valid in form though unusual.
func TestParseAccepts(t *testing.T) {
	for name, doc := range map[string]string{
		"leading document marker": "---\n" + header + "rules: [{name: a, maxReplicas: 3}]\n",
		"trailing document end":   header + "rules: [{name: a, maxReplicas: 3}]\n...\n",
		"comments after the end":  header + "rules: [{name: a, maxReplicas: 3}]\n---\n# nothing here\n",
		"JSON":                    `{"apiVersion": "replicapolicy.io/v1alpha1", "kind": "ReplicaPolicy", "rules": [{"name": "a", "maxReplicas": 3}]}`,
		"CRLF line ends":          strings.ReplaceAll(header+"rules:\n- name: a\n  maxReplicas: 3\n", "\n", "\r\n"),
		"block scalar with dashes": header + "rules:\n- name: a\n  maxReplicas: 3\n" +
			"exemptNamespaces:\n- >-\n  kube---system\n",
	} {
		t.Run(name, func(t *testing.T) {
			p, errs := Parse([]byte(doc))
			if len(errs) > 0 {
				t.Fatalf("Parse:\n%s", dumpErrs(errs))
			}
			if len(p.Rules) != 1 || p.Rules[0].Name != "a" || *p.Rules[0].MaxReplicas != 3 {
				t.Errorf("parsed %+v", p.Rules)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const doc = field.ErrorTypeInvalid // errors about the whole document are Invalid at "policy.yaml"
	tests := []struct {
		name string
		doc  string
		want []wantErr
	}{{
		name: "unknown field at top level",
		doc:  header + "rulez: []\n",
		want: []wantErr{{"rulez", field.ErrorTypeForbidden, `rulez: Forbidden: unknown field (did you mean "rules"?)`}},
	}, {
		name: "unknown field with nothing near it",
		doc:  header + "colour: blue\n",
		want: []wantErr{{"colour", field.ErrorTypeForbidden, `colour: Forbidden: unknown field`}},
	}, {
		name: "unknown field in a rule",
		doc:  header + "rules:\n- name: a\n  maxReplica: 3\n",
		want: []wantErr{{"rules[0].maxReplica", field.ErrorTypeForbidden, `rules[0].maxReplica: Forbidden: unknown field (did you mean "maxReplicas"?)`}},
	}, {
		name: "wrong case is unknown, with a hint",
		doc:  header + "rules:\n- name: a\n  MaxReplicas: 3\n",
		want: []wantErr{{"rules[0].MaxReplicas", field.ErrorTypeForbidden, `rules[0].MaxReplicas: Forbidden: unknown field (did you mean "maxReplicas"?)`}},
	}, {
		name: "unknown field in default",
		doc:  header + "default:\n  minReplicas: 1\n  acton: deny\n",
		want: []wantErr{{"default.acton", field.ErrorTypeForbidden, `default.acton: Forbidden: unknown field (did you mean "action"?)`}},
	}, {
		name: "unknown field in a selector",
		doc:  header + "rules:\n- name: a\n  minReplicas: 1\n- name: b\n  minReplicas: 1\n  selector:\n    matchLabelz: {app: web}\n",
		want: []wantErr{{"rules[1].selector.matchLabelz", field.ErrorTypeForbidden, `rules[1].selector.matchLabelz: Forbidden: unknown field (did you mean "matchLabels"?)`}},
	}, {
		name: "several unknown fields",
		doc:  header + "rules:\n- name: a\n  maxReplica: 3\n  minReplica: 1\n",
		want: []wantErr{
			{"rules[0].maxReplica", field.ErrorTypeForbidden, `rules[0].maxReplica: Forbidden: unknown field (did you mean "maxReplicas"?)`},
			{"rules[0].minReplica", field.ErrorTypeForbidden, `rules[0].minReplica: Forbidden: unknown field (did you mean "minReplicas"?)`},
		},
	}, {
		name: "duplicate key in a rule",
		doc:  header + "rules:\n- name: a\n  minReplicas: 1\n  minReplicas: 2\n",
		want: []wantErr{{"rules[0].minReplicas", field.ErrorTypeDuplicate, `rules[0].minReplicas: Duplicate value: given on line 5 and again on line 6`}},
	}, {
		name: "duplicate key at top level and in a label map",
		doc:  header + "kind: ReplicaPolicy\nrules:\n- name: a\n  minReplicas: 1\n  selector:\n    matchLabels: {app: a, app: b}\n",
		want: []wantErr{
			{"kind", field.ErrorTypeDuplicate, `kind: Duplicate value: given on line 2 and again on line 3`},
			{"rules[0].selector.matchLabels[app]", field.ErrorTypeDuplicate, `rules[0].selector.matchLabels[app]: Duplicate value: given on line 8 and again on line 8`},
		},
	}, {
		name: "wrong type: a word for a number",
		doc:  header + "rules:\n- name: a\n  minReplicas: 1\n- name: b\n  minReplicas: two\n",
		want: []wantErr{{"rules[1].minReplicas", field.ErrorTypeTypeInvalid, `rules[1].minReplicas: Invalid value: "two": must be a whole number that fits in 32 bits, not a string`}},
	}, {
		name: "wrong type: a quoted number",
		doc:  header + "default: {maxReplicas: \"5\"}\n",
		want: []wantErr{{"default.maxReplicas", field.ErrorTypeTypeInvalid, `default.maxReplicas: Invalid value: "5": must be a whole number that fits in 32 bits, not a string`}},
	}, {
		name: "wrong type: too big, a fraction, not a boolean",
		doc:  header + "default: {minReplicas: 3000000000, maxReplicas: 2.5, allowZero: sometimes}\n",
		want: []wantErr{
			{"default.allowZero", field.ErrorTypeTypeInvalid, `default.allowZero: Invalid value: "sometimes": must be true or false, not a string`},
			{"default.maxReplicas", field.ErrorTypeTypeInvalid, `default.maxReplicas: Invalid value: 2.5: must be a whole number that fits in 32 bits, not a number`},
			{"default.minReplicas", field.ErrorTypeTypeInvalid, `default.minReplicas: Invalid value: 3000000000: must be a whole number that fits in 32 bits, not a number`},
		},
	}, {
		name: "wrong type: a list where a mapping goes",
		doc:  header + "rules:\n- name: a\n  minReplicas: 1\n  selector: [app]\n",
		want: []wantErr{{"rules[0].selector", field.ErrorTypeTypeInvalid, `rules[0].selector: Invalid value: must be a mapping, not a list`}},
	}, {
		name: "exemptNamespaces not a list",
		doc:  header + "exemptNamespaces: kube-system\n",
		want: []wantErr{{"exemptNamespaces", field.ErrorTypeTypeInvalid, `exemptNamespaces: Invalid value: "kube-system": must be a list, not a string`}},
	}, {
		name: "exemptNamespaces entries not strings",
		doc:  header + "exemptNamespaces: [kube-system, 5, {a: b}]\n",
		want: []wantErr{
			{"exemptNamespaces[1]", field.ErrorTypeTypeInvalid, `exemptNamespaces[1]: Invalid value: 5: must be a string, not a number`},
			{"exemptNamespaces[2]", field.ErrorTypeTypeInvalid, `exemptNamespaces[2]: Invalid value: must be a string, not a mapping`},
		},
	}, {
		name: "empty document",
		doc:  "",
		want: []wantErr{{"policy.yaml", field.ErrorTypeRequired, `policy.yaml: Required value: the policy document is empty`}},
	}, {
		name: "blank document",
		doc:  "  \n\t\n",
		want: []wantErr{{"policy.yaml", field.ErrorTypeRequired, `policy.yaml: Required value: the policy document is empty`}},
	}, {
		name: "only comments",
		doc:  "# rules: to come\n---\n",
		want: []wantErr{{"policy.yaml", field.ErrorTypeRequired, `policy.yaml: Required value: the policy document is empty`}},
	}, {
		name: "not YAML",
		doc:  "{{{ not: yaml",
		want: []wantErr{{"policy.yaml", doc, `policy.yaml: Invalid value: not valid YAML: yaml: line 1: …`}},
	}, {
		name: "a tab for indentation",
		doc:  header + "rules:\n\t- name: a\n",
		want: []wantErr{{"policy.yaml", doc, `policy.yaml: Invalid value: not valid YAML: yaml: line 4: …`}},
	}, {
		name: "a scalar",
		doc:  "hello",
		want: []wantErr{{"policy.yaml", doc, `policy.yaml: Invalid value: must be a mapping (apiVersion, kind, rules, ...), not a string`}},
	}, {
		name: "a list",
		doc:  "- " + strings.ReplaceAll(header, "\n", "\n  "),
		want: []wantErr{{"policy.yaml", doc, `policy.yaml: Invalid value: must be a mapping (apiVersion, kind, rules, ...), not a list`}},
	}, {
		name: "null",
		doc:  "null\n",
		want: []wantErr{{"policy.yaml", doc, `policy.yaml: Invalid value: must be a mapping (apiVersion, kind, rules, ...), not null`}},
	}, {
		name: "two documents",
		doc:  header + "rules: [{name: a, maxReplicas: 3}]\n---\n" + header + "rules: [{name: b, maxReplicas: 3}]\n",
		want: []wantErr{{"policy.yaml", doc, `policy.yaml: Invalid value: holds 2 YAML documents: the whole policy must be one document`}},
	}, {
		name: "a rule after a document end marker",
		doc:  header + "rules: [{name: a, maxReplicas: 3}]\n...\n--- {rules: [{name: b, maxReplicas: 3}]}\n",
		want: []wantErr{{"policy.yaml", doc, `policy.yaml: Invalid value: holds 2 YAML documents: the whole policy must be one document`}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, errs := Parse([]byte(tt.doc))
			if p != nil {
				t.Errorf("Parse returned a policy along with errors: %+v", p)
			}
			checkErrs(t, errs, tt.want)
			// Load wraps the same errors, and its message reads as one sentence.
			_, err := Load([]byte(tt.doc), Options{})
			var invalid *InvalidError
			if !errors.As(err, &invalid) {
				t.Fatalf("Load returned %T %v, want *InvalidError", err, err)
			}
			if want := "invalid replica policy: " + tt.want[0].Field; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Load: %q, want it to start with %q", err, want)
			}
		})
	}
}

func TestInvalidErrorMessage(t *testing.T) {
	err := &InvalidError{Errs: field.ErrorList{
		field.Invalid(field.NewPath("rules").Index(2).Child("maxReplicas"), 1, "must be greater than or equal to minReplicas (2)"),
		field.Required(field.NewPath("rules").Index(3).Child("name"), "every rule needs a name"),
	}}
	want := `invalid replica policy: rules[2].maxReplicas: Invalid value: 1: must be greater than or equal to minReplicas (2); rules[3].name: Required value: every rule needs a name`
	if got := err.Error(); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestSuggest(t *testing.T) {
	for path, want := range map[string]string{
		"rules[0].maxReplica":           ` (did you mean "maxReplicas"?)`,
		"rules[0].selector.matchLabelz": ` (did you mean "matchLabels"?)`,
		"Kind":                          ` (did you mean "kind"?)`,
		"exemptNamespace":               ` (did you mean "exemptNamespaces"?)`,
		"replicas":                      "",
		"rules[0].name":                 "", // a known name in the wrong place: no hint that repeats it
	} {
		if got := suggest(path); got != want {
			t.Errorf("suggest(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestCountDocuments(t *testing.T) {
	for doc, want := range map[string]int{
		"":                         0,
		"# a\n":                    0,
		"---\n# a\n...\n":          0,
		"a: 1\n":                   1,
		"---\na: 1\n":              1,
		"%YAML 1.2\n---\na: 1\n":   1,
		"a: 1\n---\n":              1,
		"a: 1\n---\nb: 1\n":        2,
		"a: 1\n--- b\n":            2,
		"a: |\n  x\n---\nb: 1\n":   2,
		"a: 1\n----\n":             1, // not a marker: a plain scalar continuing the document
		"a: 1\n...\nb: 2\n---\nc:": 3,
	} {
		if got := countDocuments([]byte(doc)); got != want {
			t.Errorf("countDocuments(%q) = %d, want %d", doc, got, want)
		}
	}
}

// TestEveryErrorAtOnce: an unknown field does not hide a validation error, so that a
// platform engineer fixes a policy in one round, not one error at a time.
func TestEveryErrorAtOnce(t *testing.T) {
	doc := header + "rules:\n- {name: a, minReplicas: 3, maxReplicas: 2, maxReplica: 5}\n"
	errs := loadErrs(t, doc)
	checkErrs(t, errs, []wantErr{
		{"rules[0].maxReplica", field.ErrorTypeForbidden, `rules[0].maxReplica: Forbidden: unknown field (did you mean "maxReplicas"?)`},
		{"rules[0].maxReplicas", field.ErrorTypeInvalid, `rules[0].maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (3)`},
	})
	// A document that cannot be decoded at all stops there: nothing else to validate.
	checkErrs(t, loadErrs(t, header+"rules: 3\n"), []wantErr{{"rules", field.ErrorTypeTypeInvalid, `rules: Invalid value: 3: must be a list, not a number`}})
}

// TestEveryErrorAtOnceWithTypeErrors: a value of the wrong type hides nothing else: the
// issue's policy with a quoted maxReplicas, a duplicate rule name, min above max and a
// misspelt field gets all four, and the values of the wrong type cause no error of their
// own beyond their type (a rule that is a string has no name; a minReplicas that is a
// word does not leave the rule without bounds).
func TestEveryErrorAtOnceWithTypeErrors(t *testing.T) {
	doc := header + `rules:
- {name: a, maxReplicas: "3"}
- {name: a, minReplicas: 5, maxReplicas: 2}
- {name: c, maxReplica: 4, minReplicas: 1}
- just-a-string
- {name: e, minReplicas: two}
`
	checkErrs(t, loadErrs(t, doc), []wantErr{
		{"rules[0].maxReplicas", field.ErrorTypeTypeInvalid, `rules[0].maxReplicas: Invalid value: "3": must be a whole number that fits in 32 bits, not a string`},
		{"rules[3]", field.ErrorTypeTypeInvalid, `rules[3]: Invalid value: "just-a-string": must be a mapping, not a string`},
		{"rules[4].minReplicas", field.ErrorTypeTypeInvalid, `rules[4].minReplicas: Invalid value: "two": must be a whole number that fits in 32 bits, not a string`},
		{"rules[2].maxReplica", field.ErrorTypeForbidden, `rules[2].maxReplica: Forbidden: unknown field (did you mean "maxReplicas"?)`},
		{"rules[1].name", field.ErrorTypeDuplicate, `rules[1].name: Duplicate value: "a"`},
		{"rules[1].maxReplicas", field.ErrorTypeInvalid, `rules[1].maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (5)`},
	})
	// A duplicate key does not hide the rest either: the last value is validated.
	checkErrs(t, loadErrs(t, header+"rules:\n- {name: a, maxReplicas: 1, maxReplicas: 2, minReplicas: 3, kinds: [Deploymnet]}\n"), []wantErr{
		{"rules[0].maxReplicas", field.ErrorTypeDuplicate, `rules[0].maxReplicas: Duplicate value: given on line 4 and again on line 4`},
		{"rules[0].kinds[0]", field.ErrorTypeInvalid, `rules[0].kinds[0]: Invalid value: "Deploymnet": must be one of Deployment, StatefulSet, ReplicaSet, or "Kind.group" for a custom resource (did you mean "Deployment"?)`},
		{"rules[0].maxReplicas", field.ErrorTypeInvalid, `rules[0].maxReplicas: Invalid value: 2: must be greater than or equal to minReplicas (3)`},
	})
}

// TestTooLargeForAConfigMap: a policy that no ConfigMap can hold (1 MiB of data, keys
// included) is invalid with that reason, before it is parsed; one that fits is read.
func TestTooLargeForAConfigMap(t *testing.T) {
	rule := "- {name: r%06d, namespaces: [ns-%06d], maxReplicas: 3}\n"
	var b strings.Builder
	b.WriteString(header + "rules:\n")
	for i := 0; b.Len() < MaxConfigMapData-len(ConfigMapKey)-len(rule)-8; i++ {
		fmt.Fprintf(&b, rule, i, i)
	}
	fits := b.String()
	if _, err := Load([]byte(fits), Options{}); err != nil {
		t.Fatalf("a policy of %d bytes: %v", len(fits), err)
	}
	over := fits + strings.Repeat("# padding\n", 1+(MaxConfigMapData-len(fits))/10)
	// Broken YAML past the limit: a policy that was parsed would report it; one refused
	// before parsing reports the size alone (no timing, which a busy machine would fail).
	over += strings.Repeat("# and more\n", 5_000_000) + "rules: [unclosed\n"
	_, err := Load([]byte(over), Options{})
	var invalid *InvalidError
	if !errors.As(err, &invalid) || len(invalid.Errs) != 1 {
		t.Fatalf("Load of a 56 MB policy: %v, want one error, its size, and no parse error", err)
	}
	want := fmt.Sprintf("policy.yaml: Too long: the policy document, with its key policy.yaml, is %d bytes: a ConfigMap holds at most 1 MiB (1048576 bytes) of data, keys included, so the API server would refuse it", len(over)+len(ConfigMapKey))
	if got := invalid.Errs[0].Error(); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	// The ConfigMap's whole data counts, as the API server counts it.
	cm := &corev1.ConfigMap{Data: map[string]string{ConfigMapKey: fits, "notes": strings.Repeat("x", 100)}}
	_, err = LoadConfigMap(cm, Options{})
	if !errors.As(err, &invalid) || !strings.HasPrefix(invalid.Errs[0].Error(), "data: Too long: the ConfigMap's data is ") {
		t.Errorf("LoadConfigMap of a ConfigMap over 1 MiB: %v", err)
	}
}
