package policy

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// dns1123 starts apimachinery's message for a name that is not a DNS-1123 label.
const dns1123 = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'…"

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []wantErr
	}{{
		name: "wrong apiVersion",
		doc:  "apiVersion: replicapolicy.io/v1\nkind: ReplicaPolicy\n",
		want: []wantErr{{"apiVersion", field.ErrorTypeNotSupported, `apiVersion: Unsupported value: "replicapolicy.io/v1": supported values: "replicapolicy.io/v1alpha1"`}},
	}, {
		name: "wrong kind",
		doc:  "apiVersion: replicapolicy.io/v1alpha1\nkind: ConfigMap\n",
		want: []wantErr{{"kind", field.ErrorTypeNotSupported, `kind: Unsupported value: "ConfigMap": supported values: "ReplicaPolicy"`}},
	}, {
		name: "apiVersion and kind missing",
		doc:  "rules: []\n",
		want: []wantErr{
			{"apiVersion", field.ErrorTypeNotSupported, `apiVersion: Unsupported value: "": supported values: "replicapolicy.io/v1alpha1"`},
			{"kind", field.ErrorTypeNotSupported, `kind: Unsupported value: "": supported values: "ReplicaPolicy"`},
		},
	}, {
		name: "min greater than max (the example message in docs/design.md)",
		doc: header + "rules:\n- {name: a, maxReplicas: 1}\n- {name: b, maxReplicas: 1}\n" +
			"- name: c\n  minReplicas: 2\n  maxReplicas: 1\n",
		want: []wantErr{{"rules[2].maxReplicas", field.ErrorTypeInvalid, `rules[2].maxReplicas: Invalid value: 1: must be greater than or equal to minReplicas (2)`}},
	}, {
		name: "negative min",
		doc:  header + "rules:\n- {name: a, minReplicas: -1}\n",
		want: []wantErr{{"rules[0].minReplicas", field.ErrorTypeInvalid, `rules[0].minReplicas: Invalid value: -1: must be greater than or equal to 0`}},
	}, {
		name: "negative max",
		doc:  header + "default: {maxReplicas: -3}\n",
		want: []wantErr{{"default.maxReplicas", field.ErrorTypeInvalid, `default.maxReplicas: Invalid value: -3: must be greater than or equal to 0`}},
	}, {
		name: "neither bound in a rule",
		doc:  header + "rules:\n- {name: a, action: deny}\n",
		want: []wantErr{{"rules[0].maxReplicas", field.ErrorTypeRequired, `rules[0].maxReplicas: Required value: at least one of minReplicas or maxReplicas is required`}},
	}, {
		name: "neither bound in the default",
		doc:  header + "default: {allowZero: true}\n",
		want: []wantErr{{"default.maxReplicas", field.ErrorTypeRequired, `default.maxReplicas: Required value: at least one of minReplicas or maxReplicas is required`}},
	}, {
		name: "bad glob",
		doc:  header + "rules:\n- {name: a, maxReplicas: 3, namespaces: [prod, \"team-[\"]}\n",
		want: []wantErr{{"rules[0].namespaces[1]", field.ErrorTypeInvalid, `rules[0].namespaces[1]: Invalid value: "team-[": not a valid shell-style glob: syntax error in pattern`}},
	}, {
		name: "invalid literal namespace",
		doc:  header + "rules:\n- {name: a, maxReplicas: 3, namespaces: [Team_A]}\n",
		want: []wantErr{{"rules[0].namespaces[0]", field.ErrorTypeInvalid, `rules[0].namespaces[0]: Invalid value: "Team_A": ` + dns1123}},
	}, {
		name: "empty namespace entry",
		doc:  header + "rules:\n- {name: a, maxReplicas: 3, namespaces: [prod, \"\"]}\n",
		want: []wantErr{{"rules[0].namespaces[1]", field.ErrorTypeRequired, `rules[0].namespaces[1]: Required value: a namespace name or glob must not be empty`}},
	}, {
		name: "selector: bad operator",
		doc:  header + "rules:\n- name: a\n  maxReplicas: 3\n  selector: {matchExpressions: [{key: app, operator: Equals, values: [web]}]}\n",
		want: []wantErr{{"rules[0].selector.matchExpressions[0].operator", field.ErrorTypeInvalid, `rules[0].selector.matchExpressions[0].operator: Invalid value: "Equals": not a valid selector operator`}},
	}, {
		name: "selector: In without values",
		doc:  header + "rules:\n- name: a\n  maxReplicas: 3\n  selector: {matchExpressions: [{key: app, operator: In}]}\n",
		want: []wantErr{{"rules[0].selector.matchExpressions[0].values", field.ErrorTypeRequired, "rules[0].selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"}},
	}, {
		name: "selector: Exists with values",
		doc:  header + "rules:\n- name: a\n  maxReplicas: 3\n  selector: {matchExpressions: [{key: app, operator: Exists, values: [web]}]}\n",
		want: []wantErr{{"rules[0].selector.matchExpressions[0].values", field.ErrorTypeForbidden, "rules[0].selector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"}},
	}, {
		name: "namespaceSelector: invalid label key",
		doc:  header + "rules:\n- name: a\n  maxReplicas: 3\n  namespaceSelector: {matchExpressions: [{key: \"env name\", operator: Exists}]}\n",
		want: []wantErr{{"rules[0].namespaceSelector.matchExpressions[0].key", field.ErrorTypeInvalid, `rules[0].namespaceSelector.matchExpressions[0].key: Invalid value: "env name": name part must consist of alphanumeric characters…`}},
	}, {
		name: "selector: invalid label value",
		doc:  header + "rules:\n- name: a\n  maxReplicas: 3\n  selector: {matchLabels: {app: \"web server\"}}\n",
		want: []wantErr{{"rules[0].selector.matchLabels", field.ErrorTypeInvalid, `rules[0].selector.matchLabels: Invalid value: "web server": a valid label must be an empty string or consist of…`}},
	}, {
		name: "missing name",
		doc:  header + "rules:\n- {maxReplicas: 3}\n",
		want: []wantErr{{"rules[0].name", field.ErrorTypeRequired, `rules[0].name: Required value: every rule needs a name: warnings, Events and metrics refer to it`}},
	}, {
		name: "duplicate name",
		doc:  header + "rules:\n- {name: web, maxReplicas: 3}\n- {name: api, maxReplicas: 3}\n- {name: web, maxReplicas: 5}\n",
		want: []wantErr{{"rules[2].name", field.ErrorTypeDuplicate, `rules[2].name: Duplicate value: "web"`}},
	}, {
		name: "invalid name",
		doc:  header + "rules:\n- {name: Prod_Web, maxReplicas: 3}\n",
		want: []wantErr{{"rules[0].name", field.ErrorTypeInvalid, `rules[0].name: Invalid value: "Prod_Web": ` + dns1123}},
	}, {
		name: "reserved name",
		doc:  header + "rules:\n- {name: default, maxReplicas: 3}\n",
		want: []wantErr{{"rules[0].name", field.ErrorTypeInvalid, `rules[0].name: Invalid value: "default": is reserved for the policy's default bounds`}},
	}, {
		name: "unknown action",
		doc:  header + "rules:\n- {name: a, maxReplicas: 3, action: block}\n",
		want: []wantErr{{"rules[0].action", field.ErrorTypeNotSupported, `rules[0].action: Unsupported value: "block": supported values: "clamp", "deny", "warn"`}},
	}, {
		name: "unknown action in the default",
		doc:  header + "default: {maxReplicas: 3, action: Clamp}\n",
		want: []wantErr{{"default.action", field.ErrorTypeNotSupported, `default.action: Unsupported value: "Clamp": supported values: "clamp", "deny", "warn"`}},
	}, {
		name: "exemptNamespaces malformed",
		doc:  header + "exemptNamespaces: [kube-system, \"\", \"kube-[\", Kube_Public]\n",
		want: []wantErr{
			{"exemptNamespaces[1]", field.ErrorTypeRequired, `exemptNamespaces[1]: Required value: a namespace name or glob must not be empty`},
			{"exemptNamespaces[2]", field.ErrorTypeInvalid, `exemptNamespaces[2]: Invalid value: "kube-[": not a valid shell-style glob: syntax error in pattern`},
			{"exemptNamespaces[3]", field.ErrorTypeInvalid, `exemptNamespaces[3]: Invalid value: "Kube_Public": ` + dns1123},
		},
	}, {
		name: "several errors at once",
		doc: "apiVersion: v1\nkind: ReplicaPolicy\nexemptNamespaces: [\"\"]\ndefault: {minReplicas: 5, maxReplicas: 4}\nrules:\n" +
			"- {name: a, minReplicas: -1, namespaces: [\"x[\"]}\n" +
			"- {name: a, maxReplicas: 3, action: nope, selector: {matchExpressions: [{key: k, operator: In}]}}\n" +
			"- {maxReplicas: 3}\n",
		want: []wantErr{
			{"apiVersion", field.ErrorTypeNotSupported, `apiVersion: Unsupported value: "v1": supported values: "replicapolicy.io/v1alpha1"`},
			{"exemptNamespaces[0]", field.ErrorTypeRequired, `exemptNamespaces[0]: Required value: a namespace name or glob must not be empty`},
			{"default.maxReplicas", field.ErrorTypeInvalid, `default.maxReplicas: Invalid value: 4: must be greater than or equal to minReplicas (5)`},
			{"rules[0].namespaces[0]", field.ErrorTypeInvalid, `rules[0].namespaces[0]: Invalid value: "x[": not a valid shell-style glob: syntax error in pattern`},
			{"rules[0].minReplicas", field.ErrorTypeInvalid, `rules[0].minReplicas: Invalid value: -1: must be greater than or equal to 0`},
			{"rules[1].name", field.ErrorTypeDuplicate, `rules[1].name: Duplicate value: "a"`},
			{"rules[1].selector.matchExpressions[0].values", field.ErrorTypeRequired, "rules[1].selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"},
			{"rules[1].action", field.ErrorTypeNotSupported, `rules[1].action: Unsupported value: "nope": supported values: "clamp", "deny", "warn"`},
			{"rules[2].name", field.ErrorTypeRequired, `rules[2].name: Required value: every rule needs a name: warnings, Events and metrics refer to it`},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErrs(t, loadErrs(t, tt.doc), tt.want)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for name, doc := range map[string]string{
		"design example":      designExample,
		"no rules at all":     header,
		"min only":            header + "rules: [{name: a, minReplicas: 0}]\n",
		"max only":            header + "rules: [{name: a, maxReplicas: 0}]\n",
		"min equals max":      header + "rules: [{name: a, minReplicas: 3, maxReplicas: 3}]\n",
		"every action":        header + "rules: [{name: a, maxReplicas: 1, action: clamp}, {name: b, maxReplicas: 1, action: deny}, {name: c, maxReplicas: 1, action: warn}]\n",
		"globs of every kind": header + "exemptNamespaces: [\"kube-*\", \"sys-?\"]\nrules: [{name: a, maxReplicas: 1, namespaces: [\"team-*\", \"?\", \"[ab]\", \"x\\\\-y\"]}]\n",
		"empty selectors":     header + "rules: [{name: a, maxReplicas: 1, selector: {}, namespaceSelector: {}}]\n",
		"63-character name":   header + "rules: [{name: " + strings.Repeat("a", 63) + ", maxReplicas: 1}]\n",
	} {
		t.Run(name, func(t *testing.T) {
			if errs := loadErrs(t, doc); len(errs) > 0 {
				t.Errorf("unexpected errors:\n%s", dumpErrs(errs))
			}
		})
	}
}
