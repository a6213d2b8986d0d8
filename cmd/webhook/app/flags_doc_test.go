package app

import (
	"bufio"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// flagsDoc is the page whose "## Flags" table documents every flag of the webhook binary.
const flagsDoc = "docs/operations.md"

// TestFlagsTableMatchesTheBinary: every flag AddFlags registers has a row in the flags table
// of docs/operations.md, every flag the table names exists, and where a row's defaults are
// plain values (`9443`; `3`, `10m` for a row of two flags) they are the flags' defaults.
func TestFlagsTableMatchesTheBinary(t *testing.T) {
	fs := flag.NewFlagSet("webhook", flag.ContinueOnError)
	NewOptions().AddFlags(fs)

	rows := flagRows(t, filepath.Join(harness.RepoRoot(), flagsDoc))
	documented := map[string]bool{}
	tick := regexp.MustCompile("^`([^`]*)`$")
	for _, r := range rows {
		for _, name := range r.names {
			documented[name] = true
			if fs.Lookup(name) == nil {
				t.Errorf("%s documents --%s, which the webhook does not have", flagsDoc, name)
			}
		}
		defaults := strings.Split(r.defaults, ", ")
		if len(defaults) != len(r.names) {
			continue // a default described in words
		}
		for i, name := range r.names {
			m := tick.FindStringSubmatch(defaults[i])
			f := fs.Lookup(name)
			if m == nil || f == nil {
				continue
			}
			want := m[1]
			if strings.HasPrefix(want, "/tmp/") { // --cert-dir: under os.TempDir()
				want = os.TempDir() + strings.TrimPrefix(want, "/tmp")
			}
			if f.DefValue != want && !sameDuration(f.DefValue, want) {
				t.Errorf("%s: --%s defaults to %q, the binary's default is %q", flagsDoc, name, want, f.DefValue)
			}
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !documented[f.Name] {
			t.Errorf("--%s has no row in the flags table of %s", f.Name, flagsDoc)
		}
	})
	if len(rows) < 10 {
		t.Fatalf("found %d rows in the flags table of %s: has the section moved?", len(rows), flagsDoc)
	}
}

// sameDuration: the table writes 10m where the flag's default prints 10m0s.
func sameDuration(a, b string) bool {
	da, errA := time.ParseDuration(a)
	db, errB := time.ParseDuration(b)
	return errA == nil && errB == nil && da == db
}

type flagRow struct {
	names    []string
	defaults string
}

// flagRows reads the rows of the table under "## Flags": the flags named in the first cell and
// the second cell as written.
func flagRows(t *testing.T, path string) []flagRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	name := regexp.MustCompile("`--([a-z0-9-]+)`")
	var rows []flagRow
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Flags"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(line, " | ")
		if len(cells) < 3 {
			t.Fatalf("%s: a flags row without three cells: %s", path, line)
		}
		var r flagRow
		for _, m := range name.FindAllStringSubmatch(cells[0], -1) {
			r.names = append(r.names, m[1])
		}
		r.defaults = cells[1]
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}
