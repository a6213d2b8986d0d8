package monitoring

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/teststorage"
	"sigs.k8s.io/yaml"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"

	"github.com/replica-policy/replica-policy/internal/harness"
)

// scrapeInterval is the ServiceMonitor's interval. The tests scrape the real binary about
// once a second and store each scrape as the next one of a 30 s series (time compressed
// 30 times), so that an alert's `for:` and rate windows, written for a real Prometheus, are
// covered in seconds: a `for: 10m` is 20 scrapes. Counter rates come out 30 times lower
// than the binary's real ones; no alert compares a rate with anything but 0.
const scrapeInterval = 30 * time.Second

// Target labels, as the Prometheus Operator sets them for the ServiceMonitor's endpoint.
const (
	jobName       = "replica-policy-webhook" // the Service's name
	podNamespace  = "replica-policy-system"
	componentPath = "manifests/components/monitoring"
)

var promParser = parser.NewParser(parser.Options{})

// prometheusRule is the component's PrometheusRule, strictly decoded into the Prometheus
// Operator's type: a field the operator does not know is an error.
func prometheusRule(t testing.TB) *monitoringv1.PrometheusRule {
	t.Helper()
	var pr monitoringv1.PrometheusRule
	harness.ReadYAML(t, filepath.Join(harness.RepoRoot(), componentPath, "prometheusrule.yaml"), &pr, true)
	return &pr
}

// ruleGroups parses the PrometheusRule's groups with Prometheus's rule-file parser, as the
// operator hands them to Prometheus (a rule file is the spec: `groups: [...]`).
func ruleGroups(t testing.TB) *rulefmt.RuleGroups {
	t.Helper()
	spec, err := yaml.Marshal(prometheusRule(t).Spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(spec, false, model.UTF8Validation, promParser, promslog.NewNopLogger())
	if len(errs) > 0 {
		t.Fatalf("rulefmt.Parse of the PrometheusRule's groups: %v", errs)
	}
	return groups
}

// alertingRules builds fresh rules (no state) from the rule file.
func alertingRules(t testing.TB) []*rules.AlertingRule {
	t.Helper()
	var out []*rules.AlertingRule
	for _, g := range ruleGroups(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			expr, err := promParser.ParseExpr(r.Expr)
			if err != nil {
				t.Fatalf("%s: %v", r.Alert, err)
			}
			out = append(out, rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
				labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, promslog.NewNopLogger()))
		}
	}
	return out
}

// A prometheus scrapes one webhook process into a TSDB and evaluates every alert of the rule
// file after each scrape, as Prometheus and its rule manager do (evaluation interval = scrape
// interval).
type prometheus struct {
	t       *testing.T
	db      *teststorage.TestStorage
	engine  *promql.Engine
	rules   []*rules.AlertingRule
	target  string // host:port of /metrics
	pod     string
	now     time.Time // of the last scrape, in the compressed time
	scrapes int
	last    map[string]labels.Labels // series of the last scrape, for staleness markers
	// firing is, per alert, the label sets it fired with and the scrape it first fired at.
	firing map[string]map[string]int
}

func newPrometheus(t *testing.T, target, pod string) *prometheus {
	return &prometheus{
		t:  t,
		db: teststorage.New(t),
		engine: promql.NewEngine(promql.EngineOpts{
			MaxSamples:    1e6,
			Timeout:       10 * time.Second,
			LookbackDelta: 5 * time.Minute,
			Parser:        promParser,
		}),
		rules:  alertingRules(t),
		target: target,
		pod:    pod,
		now:    time.Now(),
		last:   map[string]labels.Labels{},
		firing: map[string]map[string]int{},
	}
}

// scrape reads /metrics once, stores it at the next scrape time with the target's labels
// and up (1, or 0 when the scrape failed), then evaluates the rules at that time.
func (p *prometheus) scrape() {
	p.t.Helper()
	p.now = p.now.Add(scrapeInterval)
	p.scrapes++
	ts := p.now.UnixMilli()
	samples, err := scrapeSamples(p.target)
	app := p.db.Appender(context.Background())
	up := 1.0
	if err != nil {
		up = 0
		samples = nil
	}
	samples = append(samples, sample{name: "up", value: up})
	seen := map[string]labels.Labels{}
	for _, s := range samples {
		b := labels.NewBuilder(labels.EmptyLabels())
		for k, v := range s.labels {
			b.Set(k, v)
		}
		b.Set(labels.MetricName, s.name)
		b.Set("job", jobName)
		b.Set("namespace", podNamespace)
		b.Set("pod", p.pod)
		b.Set("service", jobName)
		b.Set("endpoint", "metrics")
		b.Set("instance", p.target)
		ls := b.Labels()
		seen[ls.String()] = ls
		if _, err := app.Append(0, ls, ts, s.value); err != nil {
			p.t.Fatalf("appending %s: %v", ls, err)
		}
	}
	// A series gone from this scrape gets a staleness marker, as Prometheus writes.
	for k, ls := range p.last {
		if _, ok := seen[k]; !ok {
			if _, err := app.Append(0, ls, ts, math.Float64frombits(value.StaleNaN)); err != nil {
				p.t.Fatal(err)
			}
		}
	}
	p.last = seen
	if err := app.Commit(); err != nil {
		p.t.Fatal(err)
	}
	recordNames(samples)
	p.evaluate()
}

// evaluate runs every alerting rule at the last scrape's time.
func (p *prometheus) evaluate() {
	p.t.Helper()
	query := rules.EngineQueryFunc(p.engine, p.db)
	for _, r := range p.rules {
		if _, err := r.Eval(context.Background(), 0, p.now, query, nil, 0); err != nil {
			p.t.Fatalf("evaluating %s: %v", r.Name(), err)
		}
		for _, a := range r.ActiveAlerts() {
			if a.State != rules.StateFiring {
				continue
			}
			if p.firing[r.Name()] == nil {
				p.firing[r.Name()] = map[string]int{}
			}
			if _, ok := p.firing[r.Name()][a.Labels.String()]; !ok {
				p.firing[r.Name()][a.Labels.String()] = p.scrapes
				p.t.Logf("scrape %d (%s of compressed time): %s fires: %s", p.scrapes, time.Duration(p.scrapes)*scrapeInterval, r.Name(), a.Labels)
			}
		}
	}
}

// query evaluates expr at the last scrape's time.
func (p *prometheus) query(expr string) promql.Vector {
	p.t.Helper()
	v, err := rules.EngineQueryFunc(p.engine, p.db)(context.Background(), expr, p.now)
	if err != nil {
		p.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// scrapeFor scrapes n times, once a second.
func (p *prometheus) scrapeFor(n int) {
	p.t.Helper()
	for range n {
		p.scrape()
		time.Sleep(time.Second)
	}
}

// scrapeUntilFiring scrapes until every alert of want fires, at most max scrapes, and fails
// the test naming those that did not.
func (p *prometheus) scrapeUntilFiring(max int, want ...string) {
	p.t.Helper()
	for range max {
		p.scrape()
		if len(p.missing(want)) == 0 {
			return
		}
		time.Sleep(time.Second)
	}
	p.t.Fatalf("after %d scrapes (%s of compressed time), not firing: %v; firing: %v", p.scrapes, time.Duration(p.scrapes)*scrapeInterval, p.missing(want), p.fired())
}

func (p *prometheus) missing(want []string) []string {
	var out []string
	for _, a := range want {
		if len(p.firing[a]) == 0 {
			out = append(out, a)
		}
	}
	return out
}

// fired names the alerts that have fired, sorted.
func (p *prometheus) fired() []string {
	var out []string
	for a := range p.firing {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// onlyFired fails the test unless exactly the alerts of want have fired.
func (p *prometheus) onlyFired(want ...string) {
	p.t.Helper()
	sort.Strings(want)
	if got := p.fired(); strings.Join(got, ",") != strings.Join(want, ",") {
		p.t.Errorf("alerts fired: %v, want exactly %v", got, want)
	}
}

// A sample is one value of a scrape, its name as a Prometheus series name (histograms and
// summaries broken into _bucket, _sum, _count).
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrapeSamples GETs a Prometheus text exposition and parses it with Prometheus's own
// parser (github.com/prometheus/common/expfmt).
func scrapeSamples(target string) ([]sample, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + target + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	var out []sample
	for name, f := range families {
		for _, m := range f.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			with := func(k, v string) map[string]string {
				c := map[string]string{k: v}
				for a, b := range ls {
					c[a] = b
				}
				return c
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out = append(out, sample{name, ls, m.GetCounter().GetValue()})
			case dto.MetricType_GAUGE:
				out = append(out, sample{name, ls, m.GetGauge().GetValue()})
			case dto.MetricType_UNTYPED:
				out = append(out, sample{name, ls, m.GetUntyped().GetValue()})
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					if !math.IsInf(b.GetUpperBound(), 1) {
						out = append(out, sample{name + "_bucket", with("le", fmt.Sprint(b.GetUpperBound())), float64(b.GetCumulativeCount())})
					}
				}
				out = append(out, sample{name + "_bucket", with("le", "+Inf"), float64(h.GetSampleCount())},
					sample{name + "_sum", ls, h.GetSampleSum()}, sample{name + "_count", ls, float64(h.GetSampleCount())})
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					out = append(out, sample{name, with("quantile", fmt.Sprint(q.GetQuantile())), q.GetValue()})
				}
				out = append(out, sample{name + "_sum", ls, s.GetSampleSum()}, sample{name + "_count", ls, float64(s.GetSampleCount())})
			}
		}
	}
	return out, nil
}

// exported are the series names every scrape of every test has seen, for the dashboard's
// check.
var exported = struct {
	sync.Mutex
	names map[string]bool
}{names: map[string]bool{}}

func recordNames(samples []sample) {
	exported.Lock()
	defer exported.Unlock()
	for _, s := range samples {
		exported.names[s.name] = true
	}
}
