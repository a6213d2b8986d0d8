package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
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
// errors named by their path, as are values of the wrong type and a second YAML document.
// It neither validates nor defaults; see Validate and Compile.
func Parse(data []byte) (*ReplicaPolicy, field.ErrorList) {
	p, errs := decode(data)
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// ParseAndValidate returns every problem of a policy document at once: what parsing finds
// (unknown or duplicate fields, wrong types, not YAML) and, whenever the document could be
// decoded despite it (unknown and duplicate fields and values of the wrong type do not
// stop decoding), what validation finds in it. The policy is returned only when there is
// no error at all.
func ParseAndValidate(data []byte) (*ReplicaPolicy, field.ErrorList) {
	p, errs := decode(data)
	if p != nil {
		errs = append(errs, withoutConsequences(p.Validate(), errs)...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// withoutConsequences drops the validation errors that only repeat a value of the wrong
// type, which decoding left out: those at or under its path (a rule given as a string has
// no name either), and the "at least one of minReplicas or maxReplicas" beside a bound of
// the wrong type.
func withoutConsequences(valErrs, parseErrs field.ErrorList) field.ErrorList {
	var wrong []string
	for _, e := range parseErrs {
		if e.Type == field.ErrorTypeTypeInvalid {
			wrong = append(wrong, e.Field)
		}
	}
	if len(wrong) == 0 {
		return valErrs
	}
	var out field.ErrorList
	for _, e := range valErrs {
		if !slices.ContainsFunc(wrong, func(w string) bool { return consequence(e, w) }) {
			out = append(out, e)
		}
	}
	return out
}

func consequence(e *field.Error, wrong string) bool {
	if e.Field == wrong || strings.HasPrefix(e.Field, wrong+".") || strings.HasPrefix(e.Field, wrong+"[") {
		return true
	}
	parent, ok := strings.CutSuffix(wrong, "minReplicas")
	return ok && e.Type == field.ErrorTypeRequired && e.Field == parent+"maxReplicas"
}

// decode is Parse, but returns the decoded document along with the errors when it could
// be decoded despite them: unknown or duplicate fields, values of the wrong type (left
// out).
func decode(data []byte) (*ReplicaPolicy, field.ErrorList) {
	// Refused before any parsing: no ConfigMap can hold it, and its parsing would cost
	// time and memory in proportion (a 50 MB policy took 39 s and 2.5 GB).
	if size := len(ConfigMapKey) + len(data); size > MaxConfigMapData {
		return nil, field.ErrorList{tooLarge(field.NewPath(ConfigMapKey), "the policy document, with its key "+ConfigMapKey+",", size)}
	}
	p, errs := parse(data)
	for _, e := range errs {
		e.Field = printable(e.Field)
	}
	return p, errs
}

// printable escapes what cannot be printed (a newline, a NUL) in a field path, which names
// the document's own keys (`"a\nb": 1`), so that every error stays one readable line in
// kubectl's output and in Events.
func printable(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func parse(data []byte) (*ReplicaPolicy, field.ErrorList) {
	if n := countDocuments(data); n == 0 {
		return nil, field.ErrorList{field.Required(field.NewPath(ConfigMapKey), "the policy document is empty")}
	} else if n > 1 {
		// sigs.k8s.io/yaml reads the first document and drops the others without a word.
		return nil, field.ErrorList{documentError(fmt.Sprintf("holds %d YAML documents: the whole policy must be one document", n))}
	}
	// YAMLToJSONStrict rejects duplicate keys, which YAML decoders otherwise resolve silently.
	var errs field.ErrorList
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		// Its error names a line, not a field: find the duplicates ourselves if that is what
		// it was, and read on (the last value wins) to find every other mistake as well.
		errs = duplicateKeys(data)
		if len(errs) == 0 {
			return nil, field.ErrorList{documentError("not valid YAML: " + oneLine(err.Error()))}
		}
		if js, err = yaml.YAMLToJSON(data); err != nil {
			return nil, errs
		}
	}
	if string(bytes.TrimSpace(js)) == "null" {
		return nil, append(errs, documentError("must be a mapping (apiVersion, kind, rules, ...), not null"))
	}
	p := &ReplicaPolicy{}
	strict, err := sigsjson.UnmarshalStrict(js, p)
	if err != nil {
		// encoding/json stops at the first value of the wrong type and names it without
		// list indexes ("rules.minReplicas"); walk the document to name all of them, then
		// decode what is left without them, so that the rest of the document is still
		// checked (unknown fields here, validation in ParseAndValidate).
		typeErrs, pruned := typeErrors(js)
		if len(typeErrs) == 0 {
			return nil, append(errs, documentError(oneLine(err.Error())))
		}
		errs = append(errs, typeErrs...)
		if pruned == nil {
			return nil, errs
		}
		p = &ReplicaPolicy{}
		if strict, err = sigsjson.UnmarshalStrict(pruned, p); err != nil {
			return nil, append(errs, documentError(oneLine(err.Error())))
		}
	}
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
	return p, errs
}

// documentError is a problem with the document as a whole rather than one field.
func documentError(detail string) *field.Error {
	return &field.Error{Type: field.ErrorTypeInvalid, Field: ConfigMapKey, BadValue: field.OmitValueType{}, Detail: detail}
}

// oneLine folds a multi-line decoder message into one line, for Events and kubectl output.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// countDocuments counts the YAML documents in data that hold more than comments. A line
// that starts with "---" or "..." is a document marker wherever it appears, even inside a
// block scalar (YAML 1.2, c-forbidden), so a line scan is exact.
func countDocuments(data []byte) int {
	n, content := 0, false
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		isMarker := (strings.HasPrefix(line, "---") || strings.HasPrefix(line, "...")) &&
			(len(line) == 3 || line[3] == ' ' || line[3] == '\t')
		if isMarker {
			if content {
				n++
			}
			rest := strings.TrimSpace(line[3:])
			content = strings.HasPrefix(line, "---") && rest != "" && !strings.HasPrefix(rest, "#")
			continue
		}
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") && !strings.HasPrefix(line, "%") {
			content = true
		}
	}
	if content {
		n++
	}
	return n
}

// duplicateKeys returns a Duplicate error, with its path, for every mapping key given twice.
func duplicateKeys(data []byte) field.ErrorList {
	var doc yaml3.Node
	if err := yaml3.Unmarshal(data, &doc); err != nil {
		return nil
	}
	var errs field.ErrorList
	walkDuplicates(nil, &doc, reflect.TypeFor[ReplicaPolicy](), &errs)
	return errs
}

// walkDuplicates walks the YAML tree alongside the Go type t (nil where the document has a
// field the type does not know), so that map keys are named "matchLabels[app]".
func walkDuplicates(fp *field.Path, n *yaml3.Node, t reflect.Type, errs *field.ErrorList) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml3.DocumentNode:
		for _, c := range n.Content {
			walkDuplicates(fp, c, t, errs)
		}
	case yaml3.SequenceNode:
		var elem reflect.Type
		if t != nil && t.Kind() == reflect.Slice {
			elem = t.Elem()
		}
		for i, c := range n.Content {
			walkDuplicates(fp.Index(i), c, elem, errs)
		}
	case yaml3.MappingNode:
		first := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			var child *field.Path
			var vt reflect.Type
			switch {
			case t != nil && t.Kind() == reflect.Map:
				child, vt = fp.Key(k.Value), t.Elem()
			case t != nil && t.Kind() == reflect.Struct:
				child, vt = childPath(fp, k.Value), jsonFields(t)[k.Value]
			default:
				child = childPath(fp, k.Value)
			}
			id := k.ShortTag() + " " + k.Value // 1 and "1" are different keys
			if line, ok := first[id]; ok {
				*errs = append(*errs, &field.Error{Type: field.ErrorTypeDuplicate, Field: child.String(), BadValue: field.OmitValueType{},
					Detail: fmt.Sprintf("given on line %d and again on line %d", line, k.Line)})
				continue
			}
			first[id] = k.Line
			walkDuplicates(child, v, vt, errs)
		}
	}
}

// typeErrors walks the JSON form of the document alongside the ReplicaPolicy type and
// returns every value of the wrong type with its full path, and the document without
// those values (nil when the document itself is not a mapping): a wrong value in a
// mapping is dropped, one in a list is null.
func typeErrors(js []byte) (field.ErrorList, []byte) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, nil
	}
	if _, ok := doc.(map[string]any); !ok {
		return field.ErrorList{documentError(fmt.Sprintf("must be a mapping (apiVersion, kind, rules, ...), not %s", JSONKind(doc)))}, nil
	}
	var errs field.ErrorList
	checkType(nil, doc, reflect.TypeFor[ReplicaPolicy](), &errs)
	pruned, err := json.Marshal(doc)
	if err != nil {
		return errs, nil
	}
	return errs, pruned
}

// checkType appends an error for every value under v that is not of type t, and removes
// it from its parent; it reports whether v itself is of the wrong type.
func checkType(fp *field.Path, v any, t reflect.Type, errs *field.ErrorList) (wrong bool) {
	if v == nil {
		return false // null leaves the zero value, whatever the type
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	want := wantedShape(fp, v, t, errs)
	if want == "" {
		return false
	}
	var bad any = field.OmitValueType{}
	switch v.(type) {
	case string, bool, json.Number:
		bad = v
	}
	*errs = append(*errs, field.TypeInvalid(fp, bad, fmt.Sprintf("must be %s, not %s", want, JSONKind(v))))
	return true
}

// wantedShape is "" when v has the shape of t (the entries of a mapping and the elements of
// a list are checked in turn, each wrong one reported and dropped), else what t wants, for
// the message: "a mapping", "a list", "a string", "true or false" or "a whole number that
// fits in 32 bits". Kinds the policy does not use are not checked.
func wantedShape(fp *field.Path, v any, t reflect.Type, errs *field.ErrorList) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return "a mapping"
		}
		checkEntries(fp, m, t, errs)
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return "a list"
		}
		for i, e := range l {
			if checkType(fp.Index(i), e, t.Elem(), errs) {
				l[i] = nil
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			return "a string"
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return "true or false"
		}
	case reflect.Int32:
		if n, ok := v.(json.Number); !ok || !fitsInt32(n) {
			return "a whole number that fits in 32 bits"
		}
	}
	return ""
}

// checkEntries checks each entry of the mapping m at fp against t, a struct (each known JSON
// field against its type; unknown fields are reported by the strict decoder) or a map (each
// value against its element type), and drops the entries of the wrong type.
func checkEntries(fp *field.Path, m map[string]any, t reflect.Type, errs *field.ErrorList) {
	keys := slices.Sorted(maps.Keys(m))
	if t.Kind() == reflect.Map {
		for _, k := range keys {
			if checkType(fp.Key(k), m[k], t.Elem(), errs) {
				delete(m, k)
			}
		}
		return
	}
	fields := jsonFields(t)
	for _, k := range keys {
		if ft, ok := fields[k]; ok && checkType(childPath(fp, k), m[k], ft, errs) {
			delete(m, k)
		}
	}
}

// fitsInt32 says whether n is a whole number that fits in 32 bits.
func fitsInt32(n json.Number) bool {
	_, err := strconv.ParseInt(n.String(), 10, 32)
	return err == nil
}

// JSONKind names the kind of a decoded JSON value for messages: "a mapping", "a list",
// "a string", "a boolean", "a number" or "null".
func JSONKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, int64:
		return "a number"
	}
	return "null"
}

// jsonFields maps the JSON names of a struct's fields to their types, with the fields of
// embedded (inline) structs promoted as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			maps.Copy(fields, jsonFields(f.Type))
		case f.IsExported():
			if name == "" {
				name = f.Name
			}
			fields[name] = f.Type
		}
	}
	return fields
}

func childPath(fp *field.Path, name string) *field.Path {
	if fp == nil {
		return field.NewPath(name)
	}
	return fp.Child(name)
}

// knownFields are the field names a policy document may use, for "did you mean" hints.
var knownFields = []string{
	"apiVersion", "kind", "exemptNamespaces", "default", "rules", "name", "namespaces",
	"namespaceSelector", "selector", "kinds", "minReplicas", "maxReplicas", "allowZero", "action",
	"matchLabels", "matchExpressions", "key", "operator", "values",
}

// suggest returns ` (did you mean "x"?)` when the last element of path is a near miss of a
// known field name (edit distance at most 2, or a case-insensitive match).
func suggest(path string) string {
	return didYouMean(path[strings.LastIndexAny(path, ".]")+1:], knownFields)
}

// didYouMean returns ` (did you mean "x"?)` when name is a near miss of one of candidates
// (edit distance at most 2, ignoring case), and "" otherwise.
func didYouMean(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, k := range candidates {
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
