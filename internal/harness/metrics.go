package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
)

// Metrics are the samples of a Prometheus text exposition, by series as served:
// `name{label="value",...}` (or `name` alone) -> value.
type Metrics map[string]float64

// ParseMetrics reads a Prometheus text exposition. Comments and lines that are not a sample
// are skipped.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// Find sums the series of metric name (exactly that name, not a longer one it prefixes)
// whose label text contains every one of labels (e.g. `webhook="/mutate"`); found is false
// when no series matches.
func (m Metrics) Find(name string, labels ...string) (sum float64, found bool) {
series:
	for k, v := range m {
		labelText, ok := strings.CutPrefix(k, name)
		if !ok || (labelText != "" && labelText[0] != '{') {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(labelText, l) {
				continue series
			}
		}
		sum, found = sum+v, true
	}
	return sum, found
}

// Sum is Find's sum: 0 when no series matches.
func (m Metrics) Sum(name string, labels ...string) float64 {
	s, _ := m.Find(name, labels...)
	return s
}

// Value is Find that calls a missing metric an error.
func (m Metrics) Value(name string, labels ...string) (float64, error) {
	s, found := m.Find(name, labels...)
	if !found {
		return 0, fmt.Errorf("no sample of %s%v", name, labels)
	}
	return s, nil
}

// GatherMetrics reads the counters and gauges of g (controller-runtime's metrics.Registry,
// which serves a webhook run in the test's process) as ScrapeMetrics reads them from an
// endpoint: by series, `name{label="value",...}`.
func GatherMetrics(g prometheus.Gatherer) (Metrics, error) {
	families, err := g.Gather()
	if err != nil {
		return nil, err
	}
	m := Metrics{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			labels := make([]string, 0, len(s.GetLabel()))
			for _, l := range s.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			series := f.GetName()
			if len(labels) > 0 {
				series += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case s.Counter != nil:
				m[series] = s.GetCounter().GetValue()
			case s.Gauge != nil:
				m[series] = s.GetGauge().GetValue()
			}
		}
	}
	return m, nil
}

// ScrapeMetrics GETs a Prometheus endpoint: url, or http://url/metrics for a bare
// host:port.
func ScrapeMetrics(url string) (Metrics, error) {
	if !strings.Contains(url, "://") {
		url = "http://" + url + "/metrics"
	}
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// ScrapeMetrics scrapes the webhook's metrics endpoint.
func (w *Webhook) ScrapeMetrics() (Metrics, error) { return ScrapeMetrics(w.Metrics) }

// APIServerMetrics scrapes kube-apiserver's own /metrics with cs (which must be allowed to).
func APIServerMetrics(ctx context.Context, cs kubernetes.Interface) (Metrics, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	return ParseMetrics(bytes.NewReader(raw))
}
