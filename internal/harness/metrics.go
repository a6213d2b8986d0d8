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
