package cli

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/owenrumney/go-sarif/v2/sarif"
	"github.com/spf13/pflag"

	"github.com/replica-policy/replica-policy/pkg/policy"
	"github.com/replica-policy/replica-policy/pkg/version"
)

// toolName is the tool's name in JUnit and SARIF reports.
const toolName = "kubectl-replica_policy"

// Output formats of check and audit.
const (
	outputText  = "text"
	outputJSON  = "json"
	outputJUnit = "junit"
	outputSARIF = "sarif"
)

var reportFormats = []string{outputText, outputJSON, outputJUnit, outputSARIF}

// ReportOptions are the flags check and audit share: the output format and the result at
// which the command fails.
type ReportOptions struct {
	Output  string
	FailOn  string
	Verbose bool
}

func (o *ReportOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Output, "output", "o", outputText, "output format: "+strings.Join(reportFormats, ", "))
	fs.StringVar(&o.FailOn, "fail-on", string(Clamp), "exit 1 when a result is at or above this one: skip < warn < clamp < deny (skip: nothing may be left unjudged)")
	fs.BoolVarP(&o.Verbose, "verbose", "v", false, "text output: list pass results too")
}

// Validate checks the flags.
func (o *ReportOptions) Validate() error {
	if !slices.Contains(reportFormats, o.Output) {
		return fmt.Errorf("--output %q: must be one of %s", o.Output, strings.Join(reportFormats, ", "))
	}
	if !slices.Contains(failOnResults, Result(o.FailOn)) {
		return fmt.Errorf("--fail-on %q: must be one of skip, warn, clamp, deny", o.FailOn)
	}
	return nil
}

// fails reports whether a finding is at or above --fail-on.
func (o *ReportOptions) fails(f Finding) bool {
	return f.Result.severity() > 0 && f.Result.severity() >= Result(o.FailOn).severity()
}

// write renders the findings in the chosen format and returns the exit error: exit 2 when
// any finding is an error (an object the API server would refuse), else exit 1 when any
// is at or above --fail-on.
func (o *ReportOptions) write(w io.Writer, suite string, fs []Finding) error {
	var err error
	switch o.Output {
	case outputJSON:
		err = writeJSON(w, fs)
	case outputJUnit:
		err = writeJUnit(w, suite, fs, o.fails)
	case outputSARIF:
		err = writeSARIF(w, fs, o.fails)
	default:
		err = writeText(w, fs, o)
	}
	if err != nil {
		return err
	}
	if n := summarize(fs).Error; n > 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("%d object(s) that the API server would refuse: see the error results", n)}
	}
	for _, f := range fs {
		if o.fails(f) {
			return exitCode(ExitFound)
		}
	}
	return nil
}

// where locates a finding for people: "file:line: " or nothing for a cluster object.
func (f Finding) where() string {
	if f.File == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d: ", f.File, f.Line)
}

// object names the finding's object: "Deployment prod/web", "HorizontalPodAutoscaler prod/web".
func (f Finding) object() string {
	return fmt.Sprintf("%s %s/%s", f.Kind(), f.Subject.Namespace, f.Name())
}

// testName names the finding's JUnit test case: its object, and for an autoscaler's end
// outside the bounds, the field, so that the two ends of one HPA are two distinct cases.
func (f Finding) testName() string {
	if f.Autoscaler != nil && f.Result != Pass && f.Result != Skip {
		return f.object() + " " + f.Field
	}
	return f.object()
}

// writeText prints a line for each result that is not pass (each result with -v), then a
// summary.
func writeText(w io.Writer, fs []Finding, o *ReportOptions) error {
	for _, f := range fs {
		if f.Result == Pass && !o.Verbose {
			continue
		}
		fmt.Fprintf(w, "%s%s: %s: %s\n", f.where(), f.object(), f.Result, f.Message)
	}
	s := summarize(fs)
	failing := 0
	for _, f := range fs {
		if o.fails(f) {
			failing++
		}
	}
	errors := ""
	if s.Error > 0 {
		errors = fmt.Sprintf(", %d error", s.Error)
	}
	_, err := fmt.Fprintf(w, "%d judged: %d pass, %d clamp, %d deny, %d warn, %d skip%s; %d at or above --fail-on=%s\n",
		len(fs), s.Pass, s.Clamp, s.Deny, s.Warn, s.Skip, errors, failing, o.FailOn)
	return err
}

// jsonReport is the -o json document.
type jsonReport struct {
	Results []jsonResult `json:"results"`
	Summary Summary      `json:"summary"`
}

type jsonResult struct {
	File       *string        `json:"file"`
	Line       *int           `json:"line"`
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Namespace  string         `json:"namespace"`
	Name       string         `json:"name"`
	Field      string         `json:"field"`
	Value      int32          `json:"value"`
	Rule       *string        `json:"rule"`
	Action     *policy.Action `json:"action"`
	Bounds     *jsonBounds    `json:"bounds"`
	Want       *int32         `json:"want"`
	Result     Result         `json:"result"`
	Message    string         `json:"message"`
}

type jsonBounds struct {
	Min *int32 `json:"min"`
	Max *int32 `json:"max"`
}

func newJSONResult(f Finding) jsonResult {
	r := jsonResult{
		APIVersion: f.APIVersion, Kind: f.Kind(), Namespace: f.Subject.Namespace, Name: f.Name(),
		Field: f.Field, Value: f.Value, Want: f.Want(), Result: f.Result, Message: f.Message,
	}
	if f.File != "" {
		file, line := f.File, f.Line
		r.File, r.Line = &file, &line
	}
	if rule := f.Rule(); rule != nil {
		name, action := rule.Name, rule.Action
		r.Rule, r.Action = &name, &action
		r.Bounds = &jsonBounds{Min: rule.Bounds.Min, Max: rule.Bounds.Max}
	}
	return r
}

func writeJSON(w io.Writer, fs []Finding) error {
	rep := jsonReport{Results: []jsonResult{}, Summary: summarize(fs)}
	for _, f := range fs {
		rep.Results = append(rep.Results, newJSONResult(f))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// JUnit XML, as CI systems read it: one testcase per result.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func writeJUnit(w io.Writer, suite string, fs []Finding, fails func(Finding) bool) error {
	s := junitSuite{Name: suite, Tests: len(fs), Cases: []junitCase{}}
	for _, f := range fs {
		c := junitCase{Name: f.testName(), Classname: suite}
		if f.File != "" {
			c.Classname = fmt.Sprintf("%s:%d", f.File, f.Line)
		}
		switch {
		case fails(f):
			s.Failures++
			c.Failure = &junitMessage{Message: f.Message, Type: string(f.Result), Text: f.where() + f.object() + ": " + string(f.Result) + ": " + f.Message}
		case f.Result == Skip:
			s.Skipped++
			c.Skipped = &junitMessage{Message: f.Message}
		default:
			c.SystemOut = string(f.Result) + ": " + f.Message
		}
		s.Cases = append(s.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// writeSARIF writes a SARIF 2.1.0 log: one result for each clamp, deny and warn finding,
// its ruleId the policy rule's name, located at the object's first line (or, for a cluster
// object, at a logical location namespace/Kind/name). Findings at or above --fail-on are
// errors, the others warnings.
func writeSARIF(w io.Writer, fs []Finding, fails func(Finding) bool) error {
	report, err := sarif.New(sarif.Version210)
	if err != nil {
		return err
	}
	run := sarif.NewRun(*sarif.NewTool(sarif.NewVersionedDriver(toolName, version.Version).
		WithInformationURI("https://github.com/replica-policy/replica-policy")))
	for _, f := range fs {
		if f.Result == Pass || f.Result == Skip {
			continue
		}
		rule := f.Rule()
		run.AddRule(rule.Name).
			WithShortDescription(sarif.NewMultiformatMessageString(fmt.Sprintf("replica policy rule %q: spec.replicas, and the range of an HPA of its workloads, within %s, action %s", rule.Name, rule.Bounds, rule.Action)))
		level := "warning"
		if fails(f) {
			level = "error"
		}
		loc := sarif.NewLocation()
		if f.File != "" {
			loc.WithPhysicalLocation(sarif.NewPhysicalLocation().
				WithArtifactLocation(sarif.NewSimpleArtifactLocation(f.File)).
				WithRegion(sarif.NewSimpleRegion(f.Line, f.Line)))
		} else {
			loc.AddLogicalLocations(sarif.NewLogicalLocation().
				WithFullyQualifiedName(fmt.Sprintf("%s/%s/%s", f.Subject.Namespace, f.Kind(), f.Name())).
				WithKind("resource"))
		}
		res := sarif.NewRuleResult(rule.Name).
			WithLevel(level).
			WithMessage(sarif.NewTextMessage(f.object() + ": " + f.Message)).
			WithLocations([]*sarif.Location{loc})
		res.Properties = sarif.Properties{"result": string(f.Result)}
		run.AddResult(res)
	}
	report.AddRun(run)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}
