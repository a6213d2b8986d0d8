// Package e2e runs the built webhook binary against a local control plane, installed with
// the manifests and kubectl as a user installs it, and checks what a user sees.
//
// Every test here except TestBuildIsStatic needs kubectl (the machine's, or the one
// `hack/controlplane.sh --with-kubectl` builds) and fails saying so where there is none.
//
//	e2e_test.go            the build, and a first install-and-scale
//	leastprivilege_test.go the binary under exactly the manifests' RBAC; what that RBAC allows
//	memory_test.go         peak RSS with 5,000 Deployments (skipped with -short)
//	manifests_test.go      the manifests as the real API server sees them (dry-run, apply)
//	demo_test.go           the demo with assertions, the in-cluster configuration, SIGTERM
//
// Certificate rotation under load is tested once, in test/reliability. The helpers (control
// plane, cluster, binary, metrics, Deployments) are internal/harness.
package e2e

import (
	"debug/elf"
	"os/exec"
	"strings"
	"testing"
)

func TestBuildIsStatic(t *testing.T) {
	bin := webhookBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s has an ELF interpreter: it is dynamically linked and will not run on distroless/static", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("%s needs shared libraries %v", bin, libs)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "replica-policy ") {
		t.Fatalf("%s --version: %v %q", bin, err, out)
	}
}
