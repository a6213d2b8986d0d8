package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/replica-policy/replica-policy/pkg/policy"
)

func TestPercentile(t *testing.T) {
	var l []time.Duration
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(101-i)*time.Millisecond) // unsorted on purpose
	}
	s := Sample{Latencies: l, Elapsed: 2 * time.Second}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 1: time.Millisecond} {
		if got := s.Percentile(p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := s.PerSecond(); got != 50 {
		t.Errorf("PerSecond = %v, want 50", got)
	}
	if got := (&Sample{}).Percentile(50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
}

func TestSumMetric(t *testing.T) {
	text := `# HELP x_total help
x_total{code="200",webhook="/mutate"} 3
x_total{code="500",webhook="/mutate"} 1
x_total{code="200",webhook="/validate"} 5
x_total_other 100
y 7
`
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"x_total", nil, 9},
		{"x_total", []string{`webhook="/mutate"`}, 4},
		{"x_total", []string{`webhook="/mutate"`, `code="200"`}, 3},
		{"y", nil, 7},
		{"absent", nil, 0},
	} {
		got, err := sumMetric(strings.NewReader(text), c.name, c.labels...)
		if err != nil || got != c.want {
			t.Errorf("%s %v = %v, %v; want %v", c.name, c.labels, got, err, c.want)
		}
	}
}

func TestAlwaysAllowedBand(t *testing.T) {
	snap, err := policy.Load([]byte(PolicyDoc("a", "b", "c", 10)), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Rules: [1, 50] twice, max 10, prod-web [2, 10], batch [1, 20] or 0, databases [3, 7],
	// dev-large max 5, default [1, 50].
	if lo, hi, ok := AlwaysAllowedBand(snap); !ok || lo != 3 || hi != 5 {
		t.Errorf("band [%d, %d] (%v), want [3, 5]", lo, hi, ok)
	}
	snap, err = policy.Load([]byte(PolicyDoc("a", "", "c", 1)), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi, ok := AlwaysAllowedBand(snap); ok {
		t.Errorf("band [%d, %d] for rules that allow at most 1 and at least 3", lo, hi)
	}
}

func TestDecideCases(t *testing.T) {
	for _, kind := range RuleKinds {
		for _, n := range []int{1, 100} {
			if _, _, err := DecideCase(kind, n); err != nil {
				t.Error(err)
			}
		}
	}
}
