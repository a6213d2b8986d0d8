package app

import (
	"strings"
	"testing"
)

func TestValidateWorkloadResource(t *testing.T) {
	for _, ok := range []string{"rollouts.argoproj.io", "clonesets.apps.kruise.io"} {
		if err := validateWorkloadResource(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"rollouts":               "must be RESOURCE.GROUP",
		".argoproj.io":           "must be RESOURCE.GROUP",
		"Rollouts.argoproj.io":   `resource "Rollouts"`,
		"rollouts.Argo_Proj":     `group "Argo_Proj"`,
		"deployments.apps":       "a built-in kind, always bounded",
		"statefulsets.apps":      "a built-in kind, always bounded",
		"rollouts/scale.argo.io": `resource "rollouts/scale"`,
	} {
		err := validateWorkloadResource(bad)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to say %q", bad, err, want)
		}
	}
	o := NewOptions()
	o.WorkloadResources = []string{"rollouts.argoproj.io", "rollouts.argoproj.io"}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "named twice") {
		t.Errorf("a repeated --workload-resource: %v", err)
	}
}
