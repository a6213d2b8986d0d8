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

func TestCorrectionsCrossing(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name       string
		n0, n1     float64
		t0, t1, t2 time.Time
		want       time.Time
	}{
		{"at the rate before", 100, 150, at(0), at(100), at(200), at(120)}, // 500/s: 10 more in 20 ms
		{"never after the poll that saw it", 100, 101, at(0), at(100), at(200), at(200)},
		{"no rate: the poll that saw it", 150, 150, at(0), at(100), at(200), at(200)},
		{"one poll below: the poll that saw it", 0, 150, time.Time{}, at(100), at(200), at(200)},
	} {
		if got := crossing(tc.t0, tc.n0, tc.t1, tc.n1, tc.t2, 160); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got.Sub(t0), tc.want.Sub(t0))
		}
	}
}
