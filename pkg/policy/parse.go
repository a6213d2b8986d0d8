package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// InvalidError is returned for a policy document that cannot be used. It lists every
// problem found, each with its field path.
type InvalidError struct {
	Errs field.ErrorList
}

func (e *InvalidError) Error() string {
	msgs := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		msgs[i] = err.Error()
	}
	return fmt.Sprintf("invalid replica policy: %s", strings.Join(msgs, "; "))
}

// Parse decodes a policy document (YAML or JSON) strictly: unknown and duplicate fields are
// errors named by their path, as are values of the wrong type. It neither validates nor
// defaults; see Validate and Compile.
func Parse(data []byte) (*ReplicaPolicy, field.ErrorList) {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, field.ErrorList{field.Required(field.NewPath(ConfigMapKey), "the policy document is empty")}
	}
	// YAMLToJSONStrict rejects duplicate keys, which YAML decoders otherwise resolve silently.
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, field.ErrorList{documentError(fmt.Sprintf("not valid YAML: %v", err))}
	}
	p := &ReplicaPolicy{}
	strict, err := sigsjson.UnmarshalStrict(js, p)
	if err != nil {
		return nil, field.ErrorList{decodeError(err)}
	}
	var errs field.ErrorList
	for _, se := range strict {
		var fe sigsjson.FieldError
		if errors.As(se, &fe) {
			path := fe.FieldPath()
			if strings.Contains(se.Error(), "duplicate field") {
				errs = append(errs, &field.Error{Type: field.ErrorTypeDuplicate, Field: path, BadValue: field.OmitValueType{}, Detail: "the field is given twice"})
				continue
			}
			errs = append(errs, field.Forbidden(field.NewPath(path), "unknown field"+suggest(path)))
			continue
		}
		errs = append(errs, documentError(se.Error()))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// decodeError turns a JSON decoding failure (a value of the wrong type, say) into a field
// error with the best path the decoder gives.
func decodeError(err error) *field.Error {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		return field.Invalid(jsonPath(ute.Field), ute.Value, fmt.Sprintf("must be of type %s", ute.Type))
	}
	return documentError(err.Error())
}

// documentError is a problem with the document as a whole rather than one field.
func documentError(detail string) *field.Error {
	return &field.Error{Type: field.ErrorTypeInvalid, Field: ConfigMapKey, BadValue: field.OmitValueType{}, Detail: detail}
}

// jsonPath turns encoding/json's "rules.BoundsSpec.minReplicas" into the field path
// rules.minReplicas: Go names of embedded structs are dropped. encoding/json does not
// report list indexes, so a type error names the field but not the rule.
func jsonPath(dotted string) *field.Path {
	var p *field.Path
	for _, part := range strings.Split(dotted, ".") {
		if part == "" || unicode.IsUpper(rune(part[0])) {
			continue
		}
		if p == nil {
			p = field.NewPath(part)
		} else {
			p = p.Child(part)
		}
	}
	return p
}

// knownFields are the field names a policy document may use, for "did you mean" hints.
var knownFields = []string{
	"apiVersion", "kind", "exemptNamespaces", "default", "rules", "name", "namespaces",
	"namespaceSelector", "selector", "minReplicas", "maxReplicas", "allowZero", "action",
	"matchLabels", "matchExpressions", "key", "operator", "values",
}

// suggest returns ` (did you mean "x"?)` when the last element of path is a near miss of a
// known field name (edit distance at most 2, or a case-insensitive match).
func suggest(path string) string {
	name := path[strings.LastIndexAny(path, ".]")+1:]
	best, bestDist := "", 3
	for _, k := range knownFields {
		d := editDistance(strings.ToLower(name), strings.ToLower(k))
		if d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" || best == name {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
