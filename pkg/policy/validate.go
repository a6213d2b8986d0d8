package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"unicode"

	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Validate returns every mistake in the policy, each named by its field path, for example
// `rules[2].maxReplicas: Invalid value: 1: must be greater than or equal to minReplicas (2)`.
func (p *ReplicaPolicy) Validate() field.ErrorList {
	var errs field.ErrorList
	if p.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), p.APIVersion, []string{APIVersion}))
	}
	if p.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), p.Kind, []string{Kind}))
	}
	for i, ns := range p.ExemptNamespaces {
		errs = append(errs, validateNamespacePattern(field.NewPath("exemptNamespaces").Index(i), ns)...)
	}
	if p.Default != nil {
		errs = append(errs, p.Default.validate(field.NewPath("default"))...)
	}
	names := sets.New[string]()
	for i := range p.Rules {
		errs = append(errs, p.Rules[i].validate(field.NewPath("rules").Index(i), names)...)
	}
	return errs
}

func (r *Rule) validate(fp *field.Path, names sets.Set[string]) field.ErrorList {
	var errs field.ErrorList
	namePath := fp.Child("name")
	switch {
	case r.Name == "":
		errs = append(errs, field.Required(namePath, "every rule needs a name: warnings, Events and metrics refer to it"))
	case r.Name == DefaultRuleName:
		errs = append(errs, field.Invalid(namePath, r.Name, "is reserved for the policy's default bounds"))
	case names.Has(r.Name):
		errs = append(errs, field.Duplicate(namePath, r.Name))
	default:
		for _, msg := range validation.IsDNS1123Label(r.Name) {
			errs = append(errs, field.Invalid(namePath, r.Name, msg))
		}
	}
	names.Insert(r.Name)
	for i, ns := range r.Namespaces {
		errs = append(errs, validateNamespacePattern(fp.Child("namespaces").Index(i), ns)...)
	}
	errs = append(errs, validateSelector(fp.Child("namespaceSelector"), r.NamespaceSelector)...)
	errs = append(errs, validateSelector(fp.Child("selector"), r.Selector)...)
	kinds := sets.New[string]()
	for i, k := range r.Kinds {
		kp := fp.Child("kinds").Index(i)
		if kinds.Has(k) {
			errs = append(errs, field.Duplicate(kp, k))
		}
		kinds.Insert(k)
		errs = append(errs, validateKind(kp, k)...)
	}
	errs = append(errs, r.BoundsSpec.validate(fp)...)
	return errs
}

func (b *BoundsSpec) validate(fp *field.Path) field.ErrorList {
	var errs field.ErrorList
	minPath, maxPath := fp.Child("minReplicas"), fp.Child("maxReplicas")
	if b.MinReplicas == nil && b.MaxReplicas == nil {
		errs = append(errs, field.Required(maxPath, "at least one of minReplicas or maxReplicas is required"))
	}
	if b.MinReplicas != nil && *b.MinReplicas < 0 {
		errs = append(errs, field.Invalid(minPath, *b.MinReplicas, "must be greater than or equal to 0"))
	}
	if b.MaxReplicas != nil && *b.MaxReplicas < 0 {
		errs = append(errs, field.Invalid(maxPath, *b.MaxReplicas, "must be greater than or equal to 0"))
	}
	if b.MinReplicas != nil && b.MaxReplicas != nil && *b.MaxReplicas < *b.MinReplicas {
		errs = append(errs, field.Invalid(maxPath, *b.MaxReplicas, fmt.Sprintf("must be greater than or equal to minReplicas (%d)", *b.MinReplicas)))
	}
	switch b.Action {
	case "", ActionClamp, ActionDeny, ActionWarn:
	default:
		errs = append(errs, field.NotSupported(fp.Child("action"), b.Action, Actions))
	}
	return errs
}

// isGlob reports whether a namespace pattern uses shell-style wildcards.
func isGlob(s string) bool { return strings.ContainsAny(s, `*?[\`) }

func validateNamespacePattern(fp *field.Path, s string) field.ErrorList {
	switch {
	case s == "":
		return field.ErrorList{field.Required(fp, "a namespace name or glob must not be empty")}
	case isGlob(s):
		if _, err := path.Match(s, ""); err != nil {
			return field.ErrorList{field.Invalid(fp, s, fmt.Sprintf("not a valid shell-style glob: %v", err))}
		}
		return nil
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(s) {
		errs = append(errs, field.Invalid(fp, s, msg))
	}
	return errs
}

// validateKind accepts a built-in kind by its exact name, and "Kind.group" for a custom
// resource; a near miss of a built-in kind gets a "did you mean".
func validateKind(fp *field.Path, k string) field.ErrorList {
	if slices.Contains(BuiltinKinds, k) {
		return nil
	}
	kind, group, custom := strings.Cut(k, ".")
	if custom && group == BuiltinGroup && slices.Contains(BuiltinKinds, kind) {
		return field.ErrorList{field.Invalid(fp, k, fmt.Sprintf("built-in kinds are named without their group (did you mean %q?)", kind))}
	}
	if !custom {
		detail := fmt.Sprintf(`must be one of %s, or "Kind.group" for a custom resource`, strings.Join(BuiltinKinds, ", "))
		return field.ErrorList{field.Invalid(fp, k, detail+didYouMean(k, BuiltinKinds))}
	}
	var errs field.ErrorList
	if kind == "" || !unicode.IsUpper(rune(kind[0])) || strings.ContainsFunc(kind, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		errs = append(errs, field.Invalid(fp, k, `the kind before the first "." must be a Kind name such as "Rollout"`))
	}
	for _, msg := range validation.IsDNS1123Subdomain(group) {
		errs = append(errs, field.Invalid(fp, k, "the group after the first \".\": "+msg))
	}
	return errs
}

func validateSelector(fp *field.Path, sel *metav1.LabelSelector) field.ErrorList {
	if sel == nil {
		return nil
	}
	errs := metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, fp)
	if len(errs) == 0 {
		// Catch what the validator lets through but the conversion refuses.
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			errs = append(errs, field.Invalid(fp, sel, err.Error()))
		}
	}
	return errs
}
