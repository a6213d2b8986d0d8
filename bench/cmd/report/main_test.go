package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteSectionKeepsTheRest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b.md")
	doc := "# Title\n\nintro\n\n" + beginMarker + "\nold figures\n" + endMarker + "\n\n## Analysis\n\nkept\n"
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(p, "new figures\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	got := string(b)
	for _, want := range []string{"# Title\n\nintro\n\n" + beginMarker, "new figures", endMarker + "\n\n## Analysis\n\nkept\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "old figures") {
		t.Errorf("old figures kept:\n%s", got)
	}
	if err := os.WriteFile(p, []byte("no markers"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(p, "x"); err == nil {
		t.Error("a file without markers was overwritten")
	}
}
