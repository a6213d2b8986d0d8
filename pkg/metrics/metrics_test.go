package metrics

import (
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// TestConstructorsRegister declares one metric of each type and reads it back from
// controller-runtime's registry: its name, help, type and label names are those declared.
func TestConstructorsRegister(t *testing.T) {
	Counter("test_counter_total", "A counter.").Add(2)
	CounterVec("test_counter_vec_total", []string{"rule", "kind"}, "A counter with labels.").WithLabelValues("r", "Deployment").Inc()
	Gauge("test_gauge", "A gauge.").Set(3)
	GaugeVec("test_gauge_vec", []string{"action"}, "A gauge with labels.").WithLabelValues("clamp").Set(4)

	want := map[string]struct {
		help   string
		typ    dto.MetricType
		labels []string
		value  float64
	}{
		"test_counter_total":     {"A counter.", dto.MetricType_COUNTER, nil, 2},
		"test_counter_vec_total": {"A counter with labels.", dto.MetricType_COUNTER, []string{"kind", "rule"}, 1},
		"test_gauge":             {"A gauge.", dto.MetricType_GAUGE, nil, 3},
		"test_gauge_vec":         {"A gauge with labels.", dto.MetricType_GAUGE, []string{"action"}, 4},
	}
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		w, ok := want[f.GetName()]
		if !ok {
			continue
		}
		delete(want, f.GetName())
		if f.GetHelp() != w.help || f.GetType() != w.typ || len(f.GetMetric()) != 1 {
			t.Errorf("%s: help %q, type %v, %d series; want %q, %v, 1", f.GetName(), f.GetHelp(), f.GetType(), len(f.GetMetric()), w.help, w.typ)
			continue
		}
		m := f.GetMetric()[0]
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName())
		}
		if !slices.Equal(labels, w.labels) {
			t.Errorf("%s: labels %v, want %v", f.GetName(), labels, w.labels)
		}
		if v := m.GetCounter().GetValue() + m.GetGauge().GetValue(); v != w.value {
			t.Errorf("%s: value %v, want %v", f.GetName(), v, w.value)
		}
	}
	for name := range want {
		t.Errorf("%s: not registered", name)
	}
}

// TestSameNameTwicePanics: a second declaration of a name is a programming error, caught at
// package initialisation rather than exported as two metrics or silently dropped.
func TestSameNameTwicePanics(t *testing.T) {
	Gauge("test_twice", "Declared once.")
	defer func() {
		if recover() == nil {
			t.Error("declaring test_twice a second time did not panic")
		}
	}()
	Counter("test_twice", "Declared again.")
}
