package harness

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

func TestMetricsSum(t *testing.T) {
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
		m, err := ParseMetrics(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Sum(c.name, c.labels...); got != c.want {
			t.Errorf("%s %v = %v; want %v", c.name, c.labels, got, c.want)
		}
		_, found := m.Find(c.name, c.labels...)
		if _, err := m.Value(c.name, c.labels...); found != (c.name != "absent") || (err == nil) != found {
			t.Errorf("%s %v: found %v, Value error %v", c.name, c.labels, found, err)
		}
	}
}

// TestGatherMetrics: a registry's counters and gauges read as their endpoint serves them.
func TestGatherMetrics(t *testing.T) {
	r := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "h"}, []string{"code", "webhook"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "y", Help: "h"})
	r.MustRegister(c, g)
	c.WithLabelValues("200", "/mutate").Add(3)
	c.WithLabelValues("500", "/mutate").Inc()
	g.Set(7)
	got, err := GatherMetrics(r)
	if err != nil {
		t.Fatal(err)
	}
	want := Metrics{`x_total{code="200",webhook="/mutate"}`: 3, `x_total{code="500",webhook="/mutate"}`: 1, "y": 7}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GatherMetrics = %v, want %v", got, want)
	}
}

func TestSummarize(t *testing.T) {
	var ws []Write
	for i := 1; i <= 100; i++ {
		ws = append(ws, Write{Dur: time.Duration(i) * time.Millisecond})
	}
	if got, want := Summarize(ws), (Latencies{P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}); got != want {
		t.Errorf("Summarize = %v, want %v", got, want)
	}
	if got := Summarize(nil); got != (Latencies{}) {
		t.Errorf("Summarize(nil) = %v", got)
	}
}

// TestOpenReportsCRD: the OpenReports Report CRD that the reports tests install is where
// the harness looks for it in the module github.com/openreports/reports-api.
func TestOpenReportsCRD(t *testing.T) {
	path, err := OpenReportsReportCRD()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "kind: CustomResourceDefinition") || !strings.Contains(string(b), "name: reports.openreports.io") {
		t.Errorf("%s is not the Report CRD (%v)", path, err)
	}
}
