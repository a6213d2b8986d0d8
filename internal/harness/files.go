package harness

import (
	"os"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"
)

// WriteFile writes text to path (mode 0644), failing the test if it cannot.
func WriteFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteYAML writes v as YAML to path, and returns that YAML.
func WriteYAML(t testing.TB, path string, v any) string {
	t.Helper()
	b, err := sigsyaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, path, string(b))
	return string(b)
}

// ReadYAML decodes the YAML file at path into into. Strict, a field that into does not
// have, or a key given twice, is an error.
func ReadYAML(t testing.TB, path string, into any, strict bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	unmarshal := sigsyaml.Unmarshal
	if strict {
		unmarshal = sigsyaml.UnmarshalStrict
	}
	if err := unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
