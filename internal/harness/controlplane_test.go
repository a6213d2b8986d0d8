package harness

import (
	"testing"
)

// TestStart checks that the control plane starts and reports the version we build.
func TestStartControlPlane(t *testing.T) {
	env := StartControlPlane(t, ControlPlaneOptions{})
	v, err := env.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.37.2" {
		t.Fatalf("kube-apiserver reports %q, want v1.37.2 (hack/controlplane.sh stamps it)", v.GitVersion)
	}
}
