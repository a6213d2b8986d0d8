package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/workload"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Fast extraction of the replica fields (metadata.labels, spec.replicas) from an object's
// JSON. encoding/json reads a Deployment twice over (a validity scan, then a decode that
// skips everything it has no field for, pod template included): that was most of a
// request's cost in the handler. scanReplicaFields reads it once, validating as it goes,
// and hands only the two small values to encoding/json.
//
// It answers only for the canonical input kube-apiserver sends; for anything else
// (escaped or case-variant keys that encoding/json would fold onto a field, a repeated
// field, a value of an unexpected type, a number that is not a plain integer, deep
// nesting, invalid JSON) it returns errNotCanonical and the caller decodes with
// encoding/json, whose result and error text stay the reference.

// metadataFields are the members of metadata a decision reads.
var metadataFields = []string{"labels", "ownerReferences"}

// errNotCanonical sends the caller to encoding/json.
var errNotCanonical = errors.New("not canonical JSON for the fast path")

// maxScanDepth bounds recursion; deeper input is left to encoding/json (whose own limit is
// 10000).
const maxScanDepth = 1000

// scanReplicaFields extracts metadata.labels and spec.replicas from the JSON object raw.
func scanReplicaFields(raw []byte) (*replicaFields, error) {
	s := scanner{b: raw}
	f := &replicaFields{}
	s.ws()
	var seenMeta, seenSpec bool
	err := s.object(0, func(key []byte) error {
		switch {
		case string(key) == "metadata":
			if seenMeta {
				return errNotCanonical
			}
			seenMeta = true
			return s.fields(metadataFields, f.labels, f.ownerReferences)
		case string(key) == "spec":
			if seenSpec {
				return errNotCanonical
			}
			seenSpec = true
			return s.field("replicas", f.replicas)
		case foldsTo(key, "metadata", "spec"):
			return errNotCanonical
		}
		return s.skip(1)
	})
	if err != nil {
		return nil, errNotCanonical
	}
	if s.ws(); s.i != len(s.b) {
		return nil, errNotCanonical
	}
	return f, nil
}

// labels takes metadata.labels from its JSON value v.
func (f *replicaFields) labels(v []byte) error {
	if v[0] != '{' {
		return errNotCanonical // null or a wrong type: encoding/json decides
	}
	labels, ok := plainStringMap(v)
	if !ok {
		return json.Unmarshal(v, &f.Metadata.Labels)
	}
	f.Metadata.Labels = labels
	return nil
}

// ownerReferences takes metadata.ownerReferences from its JSON value v: rare and small (a
// ReplicaSet's Deployment), decoded by encoding/json.
func (f *replicaFields) ownerReferences(v []byte) error {
	if v[0] != '[' {
		return errNotCanonical
	}
	return json.Unmarshal(v, &f.Metadata.OwnerReferences)
}

// replicas takes spec.replicas from its JSON value v.
func (f *replicaFields) replicas(v []byte) error {
	if string(v) == "null" {
		return nil
	}
	n, err := strconv.ParseInt(string(v), 10, 32)
	if err != nil {
		return errNotCanonical // 3.0, 1e2, "3", out of range: encoding/json decides
	}
	r := int32(n)
	f.Spec.Replicas = &r
	return nil
}

// plainStringMap decodes a JSON object, already validated, whose keys and values are all
// strings without escapes and in valid UTF-8: those encoding/json copies as they are. It
// reports false for anything else (escapes, invalid UTF-8 that encoding/json would replace,
// a value of another type), which the caller leaves to encoding/json.
func plainStringMap(raw []byte) (map[string]string, bool) {
	s := scanner{b: raw}
	m := map[string]string{}
	err := s.object(0, func(key []byte) error {
		start := s.i
		v, err := s.str()
		if err != nil || !plainString(key) || !plainString(v) {
			s.i = start
			return errNotCanonical
		}
		m[string(key)] = string(v)
		return nil
	})
	return m, err == nil
}

func plainString(b []byte) bool {
	return bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b)
}

// foldsTo reports whether key is one of names in a form encoding/json would also match:
// escaped, or in another case.
func foldsTo(key []byte, names ...string) bool {
	if bytes.IndexByte(key, '\\') >= 0 {
		return true
	}
	for _, n := range names {
		if strings.EqualFold(string(key), n) {
			return true
		}
	}
	return false
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object reads an object at s.i, calling member for each key with s.i at the start of its
// value; member must consume the value.
func (s *scanner) object(depth int, member func(key []byte) error) error {
	if depth > maxScanDepth {
		return errNotCanonical
	}
	return s.sequence('{', '}', func() error {
		key, err := s.str()
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errNotCanonical
		}
		s.i++
		s.ws()
		return member(key)
	})
}

// sequence reads an object or an array at s.i, from open to close, calling elem with s.i
// at the start of each member or element; elem must consume it.
func (s *scanner) sequence(open, close byte, elem func() error) error {
	if s.i >= len(s.b) || s.b[s.i] != open {
		return errNotCanonical
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == close {
		s.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errNotCanonical
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case close:
			s.i++
			return nil
		default:
			return errNotCanonical
		}
	}
}

// field reads an object at s.i and calls value with the raw value of its member name;
// a case-variant or repeated name is not canonical. A value that is not an object (null,
// a wrong type) is not canonical either.
func (s *scanner) field(name string, value func(v []byte) error) error {
	return s.fields([]string{name}, value)
}

// fields is field for several member names, names[i] read by values[i] (at most 8).
func (s *scanner) fields(names []string, values ...func(v []byte) error) error {
	var seen uint8
	return s.object(1, func(key []byte) error {
		for i, n := range names {
			if string(key) != n {
				continue
			}
			if seen&(1<<i) != 0 {
				return errNotCanonical
			}
			seen |= 1 << i
			start := s.i
			if err := s.skip(2); err != nil {
				return err
			}
			return values[i](s.b[start:s.i])
		}
		if foldsTo(key, names...) {
			return errNotCanonical
		}
		return s.skip(2)
	})
}

// str reads a string at s.i and returns its raw content, escapes included.
func (s *scanner) str() ([]byte, error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, errNotCanonical
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], nil
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return nil, errNotCanonical
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return nil, errNotCanonical
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !isHex(h) {
						return nil, errNotCanonical
					}
				}
				s.i += 6
			default:
				return nil, errNotCanonical
			}
		case c < 0x20:
			return nil, errNotCanonical
		default:
			s.i++
		}
	}
	return nil, errNotCanonical
}

// skip reads any value at s.i.
func (s *scanner) skip(depth int) error {
	if depth > maxScanDepth || s.i >= len(s.b) {
		return errNotCanonical
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth, func([]byte) error { return s.skip(depth + 1) })
	case c == '[':
		return s.sequence('[', ']', func() error { return s.skip(depth + 1) })
	case c == '"':
		_, err := s.str()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return errNotCanonical
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return errNotCanonical
	}
	s.i += len(lit)
	return nil
}

// number reads a number with JSON's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return errNotCanonical
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return errNotCanonical
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return errNotCanonical
		}
	}
	return nil
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// decodeRequest reads the replica fields of req's object, a workload of kind or its Scale,
// and sets r's replicas and, for an update, the stored ones. A Scale always has
// spec.replicas; a custom resource's object may keep its count elsewhere (its CRD's
// specReplicasPath).
func decodeRequest(req admission.Request, kind workload.Kind, r *Request) (*replicaFields, error) {
	path := []string(nil)
	if !r.Scale && !kind.SpecReplicas() {
		path = kind.ReplicasPath
	}
	obj, err := decodeReplicaFields(req.Object.Raw, "object", path)
	if err != nil {
		return nil, err
	}
	r.Replicas = replicasOf(obj, r.Scale)
	if req.Operation == admissionv1.Update {
		old, err := decodeReplicaFields(req.OldObject.Raw, "oldObject", path)
		if err != nil {
			return nil, err
		}
		v := replicasOf(old, r.Scale)
		r.OldReplicas = &v
	}
	return obj, nil
}

// replicaFields is all a decision reads of a workload or a Scale: decoding just these
// fields skips the pod template, which is most of a Deployment's bytes.
type replicaFields struct {
	Metadata struct {
		Labels          map[string]string       `json:"labels"`
		OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int32 `json:"replicas"`
	} `json:"spec"`
}

// decodeReplicaFields reads the labels, owners and replicas of raw; replicasPath, when not
// nil, is where the replica count is instead of spec.replicas (a custom resource).
func decodeReplicaFields(raw []byte, what string, replicasPath []string) (*replicaFields, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("the request carries no %s", what)
	}
	if replicasPath != nil {
		return decodeAtPath(raw, what, replicasPath)
	}
	// The fast path reads the object once; anything it does not fully understand is
	// decoded by encoding/json, which stays the reference (fields.go).
	if f, err := scanReplicaFields(raw); err == nil {
		return f, nil
	}
	f := &replicaFields{}
	if err := json.Unmarshal(raw, f); err != nil {
		return nil, fmt.Errorf("decoding the %s: %w", what, err)
	}
	return f, nil
}

// decodeAtPath decodes an object whose replica count is at path (a custom resource's
// specReplicasPath other than .spec.replicas): with encoding/json, as a whole.
func decodeAtPath(raw []byte, what string, path []string) (*replicaFields, error) {
	f := &replicaFields{}
	if err := json.Unmarshal(raw, &struct {
		Metadata *struct {
			Labels          map[string]string       `json:"labels"`
			OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
		} `json:"metadata"`
	}{Metadata: &f.Metadata}); err != nil {
		return nil, fmt.Errorf("decoding the %s: %w", what, err)
	}
	var obj map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&obj); err != nil {
		return nil, fmt.Errorf("decoding the %s: %w", what, err)
	}
	v, found, err := unstructured.NestedFieldNoCopy(obj, path...)
	if err != nil || !found || v == nil {
		return f, nil
	}
	n, ok := v.(json.Number)
	i, err := n.Int64()
	if !ok || err != nil || i < math.MinInt32 || i > math.MaxInt32 {
		return nil, fmt.Errorf("decoding the %s: .%s is not a 32-bit integer: %v", what, strings.Join(path, "."), v)
	}
	r := int32(i)
	f.Spec.Replicas = &r
	return f, nil
}

// replicasOf reads the requested replicas. A Scale (autoscaling/v1) omits replicas when it
// is 0; a workload's nil replicas is
// policy.DefaultReplicas.
func replicasOf(f *replicaFields, isScale bool) int32 {
	if f.Spec.Replicas == nil && isScale {
		return 0
	}
	if f.Spec.Replicas == nil {
		return policy.DefaultReplicas
	}
	return *f.Spec.Replicas
}
