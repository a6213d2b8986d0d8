package policy

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// header starts every policy document in the tests.
const header = "apiVersion: replicapolicy.io/v1alpha1\nkind: ReplicaPolicy\n"

// wantErr is one expected field error. Msg is the whole Error() text, so the value and
// the detail are checked too; a Msg ending in "…" is a prefix (for apimachinery's long
// DNS-1123 messages).
type wantErr struct {
	Field string
	Type  field.ErrorType
	Msg   string
}

// checkErrs compares errors one by one, in order: path, type and text.
func checkErrs(t *testing.T, got field.ErrorList, want []wantErr) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", len(got), len(want), dumpErrs(got))
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.Field != w.Field {
			t.Errorf("error %d: field %q, want %q (%s)", i, g.Field, w.Field, g.Error())
		}
		if g.Type != w.Type {
			t.Errorf("error %d: type %q, want %q (%s)", i, g.Type, w.Type, g.Error())
		}
		if prefix, ok := strings.CutSuffix(w.Msg, "…"); ok {
			if !strings.HasPrefix(g.Error(), prefix) {
				t.Errorf("error %d:\n got %s\nwant %s…", i, g.Error(), prefix)
			}
		} else if g.Error() != w.Msg {
			t.Errorf("error %d:\n got %s\nwant %s", i, g.Error(), w.Msg)
		}
		if strings.Contains(g.Error(), "\n") {
			t.Errorf("error %d spans lines, which Events and kubectl render badly: %q", i, g.Error())
		}
	}
}

func dumpErrs(errs field.ErrorList) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("  " + e.Field + " | " + string(e.Type) + " | " + e.Error() + "\n")
	}
	return b.String()
}

// loadErrs parses and validates doc the way Load does and returns the field errors, after
// checking that Load reports the same ones in an *InvalidError.
func loadErrs(t *testing.T, doc string) field.ErrorList {
	t.Helper()
	p, errs := Parse([]byte(doc))
	if len(errs) == 0 {
		if p == nil {
			t.Fatal("Parse returned neither a policy nor errors")
		}
		errs = p.Validate()
	} else if p != nil {
		t.Errorf("Parse returned a policy along with errors")
	} else if d, _ := decode([]byte(doc)); d != nil {
		errs = append(errs, withoutConsequences(d.Validate(), errs)...) // decoded despite unknown fields or wrong types: validated too
	}
	_, err := Load([]byte(doc), Options{})
	var invalid *InvalidError
	switch {
	case len(errs) == 0 && err != nil:
		t.Errorf("Load: %v, but Parse and Validate found nothing", err)
	case len(errs) > 0 && !errors.As(err, &invalid):
		t.Errorf("Load returned %T (%v), want *InvalidError", err, err)
	case len(errs) > 0 && len(invalid.Errs) != len(errs):
		t.Errorf("Load reports %d errors, Parse+Validate %d", len(invalid.Errs), len(errs))
	}
	return errs
}

// mustLoad compiles a policy document that must be valid.
func mustLoad(t testing.TB, doc string, opts Options) *Snapshot {
	t.Helper()
	s, err := Load([]byte(doc), opts)
	if err != nil {
		t.Fatalf("Load: %v\n%s", err, doc)
	}
	return s
}
