package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/replica-policy/replica-policy/internal/harness"
)

func TestDriftVerdictJudgesAgainstTheControl(t *testing.T) {
	for _, tc := range []struct {
		q, ctl float64
		want   string
	}{
		{1.05, 1.0, "met"},
		{1.15, 1.10, "**not resolved** (0.05 over, the control moved 0.10)"},
		{1.15, 0.90, "**not resolved**"}, // drift either way
		{1.30, 1.10, "**missed**"},
	} {
		if got := driftVerdict(tc.q, tc.ctl, 1.1); !strings.HasPrefix(got, tc.want) {
			t.Errorf("x%.2f, control x%.2f: %q, want %q...", tc.q, tc.ctl, got, tc.want)
		}
	}
}

func TestScaleTargetsCompareTheLastSizeWithTheFirst(t *testing.T) {
	sample := func(d time.Duration) harness.Sample { return harness.Sample{Latencies: []time.Duration{d, d, d}} }
	r := &Report{Scale: &ScaleResult{Steps: []ScaleStep{
		{Deployments: 1000, Ready: []time.Duration{time.Second}, Bare: []time.Duration{time.Second}, Selector: sample(400 * time.Microsecond), Name: sample(300 * time.Microsecond)},
		{Deployments: 10000, Ready: []time.Duration{time.Second}, Bare: []time.Duration{time.Second}, Memory: harness.Memory{Peak: 50 * mib}},
		{Deployments: 100000, Ready: []time.Duration{9 * time.Second, 3 * time.Second, 5 * time.Second}, Bare: []time.Duration{2 * time.Second, 2 * time.Second, 3 * time.Second},
			Selector: sample(420 * time.Microsecond), Name: sample(300 * time.Microsecond), Memory: harness.Memory{Peak: 150 * mib}},
	}}}
	var b bytes.Buffer
	r.scaleTargets(printer(&b))
	got := b.String()
	for _, want := range []string{
		"ready 5.00 s, bare informer 2.00 s (x2.50) | **missed**", // medians of the last size
		"420 µs against 400 µs (x1.05); control, a name rule: x1.00; the selector rule's over the control's: x1.05 | met",
		"peak RSS < 48 MiB with 10000 workloads, start-up included | 50.0 MiB | **missed**",
		"peak RSS < 160 MiB with 100000 workloads, start-up included | 150.0 MiB | met",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack %q:\n%s", want, got)
		}
	}
}
