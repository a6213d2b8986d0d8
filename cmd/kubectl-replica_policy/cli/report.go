package cli

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

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
	BaseDir string
}

func (o *ReportOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Output, "output", "o", outputText, "output format: "+strings.Join(reportFormats, ", "))
	fs.StringVar(&o.FailOn, "fail-on", string(Clamp), "exit 1 when a result is at or above this one: skip < warn < clamp < deny (skip: nothing may be left unjudged)")
	fs.BoolVarP(&o.Verbose, "verbose", "v", false, "text output: list pass results too")
	fs.StringVar(&o.BaseDir, "base-dir", ".", "sarif output: the folder artifact URIs are relative to (the repository's root for GitHub code scanning)")
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
		err = writeSARIF(w, fs, o.fails, o.BaseDir)
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

// objectFindings groups the findings of one object: an autoscaler's two ends outside its
// bounds are two findings and one object, in SARIF and JUnit.
func objectFindings(fs []Finding) [][]Finding {
	var groups [][]Finding
	for _, f := range fs {
		if n := len(groups); n > 0 {
			last := groups[n-1][0]
			if last.Autoscaler != nil && f.Autoscaler == last.Autoscaler {
				groups[n-1] = append(groups[n-1], f)
				continue
			}
		}
		groups = append(groups, []Finding{f})
	}
	return groups
}

// worst is the finding of a group that decides its result: an error, else the most
// severe.
func worst(group []Finding) Finding {
	w := group[0]
	for _, f := range group[1:] {
		if w.Result != Error && (f.Result == Error || f.Result.severity() > w.Result.severity()) {
			w = f
		}
	}
	return w
}

// messages joins the messages of a group, as the webhook joins a denial's.
func messages(group []Finding) string {
	ms := make([]string, len(group))
	for i, f := range group {
		ms[i] = f.Message
	}
	return strings.Join(ms, "; ")
}

// JUnit XML, as CI systems read it: a testsuite per file, a testcase per object. CI tools
// (Jenkins, GitLab) split a classname at its dots into package and class, so the classname
// is the object's kind, and the name its namespace/name with any dot as "_".
type junitSuites struct {
	XMLName xml.Name `xml:"testsuites"`
	Name    string   `xml:"name,attr"`
	junitCounts
	Suites []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name string `xml:"name,attr"`
	junitCounts
	Cases []junitCase `xml:"testcase"`

	elapsed time.Duration
}

// junitCounts are the attributes of testsuites and of each testsuite.
type junitCounts struct {
	Tests    int    `xml:"tests,attr"`
	Failures int    `xml:"failures,attr"`
	Errors   int    `xml:"errors,attr"`
	Skipped  int    `xml:"skipped,attr"`
	Time     string `xml:"time,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// seconds is a JUnit time attribute.
func seconds(d time.Duration) string { return fmt.Sprintf("%.6f", d.Seconds()) }

// noDots replaces the dots that CI tools split names at.
var noDots = strings.NewReplacer(".", "_")

func writeJUnit(w io.Writer, suite string, fs []Finding, fails func(Finding) bool) error {
	doc := junitSuites{Name: suite}
	var suites []*junitSuite
	byFile := map[string]*junitSuite{}
	for _, group := range objectFindings(fs) {
		f := worst(group)
		name := f.File
		if name == "" {
			name = suite // a cluster's objects have no file
		}
		s := byFile[name]
		if s == nil {
			s = &junitSuite{Name: name, Cases: []junitCase{}}
			byFile[name] = s
			suites = append(suites, s)
		}
		var elapsed time.Duration
		for _, g := range group {
			elapsed += g.Elapsed
		}
		c := junitCase{Name: noDots.Replace(f.Subject.Namespace + "/" + f.Name()), Classname: f.Kind(), File: f.File, Line: f.FieldLine(f.Field), Time: seconds(elapsed)}
		text := f.where() + f.object() + ": " + string(f.Result) + ": " + messages(group)
		switch {
		case f.Result == Error:
			s.Errors++
			c.Error = &junitMessage{Message: messages(group), Type: string(f.Result), Text: text}
		case fails(f):
			s.Failures++
			c.Failure = &junitMessage{Message: messages(group), Type: string(f.Result), Text: text}
		case f.Result == Skip:
			s.Skipped++
			c.Skipped = &junitMessage{Message: messages(group)}
		default:
			c.SystemOut = string(f.Result) + ": " + messages(group)
		}
		s.Tests++
		s.elapsed += elapsed
		s.Cases = append(s.Cases, c)
	}
	var total time.Duration
	for _, s := range suites {
		s.Time = seconds(s.elapsed)
		total += s.elapsed
		doc.Tests, doc.Failures, doc.Errors, doc.Skipped = doc.Tests+s.Tests, doc.Failures+s.Failures, doc.Errors+s.Errors, doc.Skipped+s.Skipped
		doc.Suites = append(doc.Suites, *s)
	}
	doc.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// refusedRule is the SARIF rule of error results: objects the API server would refuse.
const refusedRule = "refused-by-api-server"

// sarifBase is the uriBaseId of artifact URIs: the folder they are relative to.
const sarifBase = "SRCROOT"

// artifactURI is the SARIF URI of file: relative to base, with forward slashes, and
// percent-encoded (a space is %20, a "#" %23, which a URI would read as a fragment).
func artifactURI(file, base string) (string, error) {
	abs, err := filepath.Abs(filepath.FromSlash(file))
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(base, abs)
	if err != nil {
		return "", err
	}
	return (&url.URL{Path: filepath.ToSlash(rel)}).EscapedPath(), nil
}

// writeSARIF writes a SARIF 2.1.0 log: one result for each object that is clamped,
// denied, warned about or refused (an HPA with both ends outside its bounds is one
// result), its ruleId the policy rule's name, located at the line of the field judged
// (spec.replicas; an HPA's ends), in a URI relative to base (the working directory, or
// --base-dir). An object from stdin or a cluster has a logical location instead
// (namespace/Kind/name). Findings at or above --fail-on, and errors, are errors; the
// others warnings.
func writeSARIF(w io.Writer, fs []Finding, fails func(Finding) bool, base string) error {
	report, err := sarif.New(sarif.Version210)
	if err != nil {
		return err
	}
	base, err = filepath.Abs(base)
	if err != nil {
		return err
	}
	run := sarif.NewRun(*sarif.NewTool(sarif.NewVersionedDriver(toolName, version.Version).
		WithInformationURI("https://github.com/replica-policy/replica-policy")))
	run.OriginalUriBaseIDs = map[string]*sarif.ArtifactLocation{
		sarifBase: sarif.NewArtifactLocation().WithUri((&url.URL{Scheme: "file", Path: filepath.ToSlash(base) + "/"}).String()),
	}
	for _, group := range objectFindings(fs) {
		f := worst(group)
		if f.Result == Pass || f.Result == Skip {
			continue
		}
		level := "warning"
		if f.Result == Error || slices.ContainsFunc(group, fails) {
			level = "error"
		}
		loc, err := sarifLocation(group, base)
		if err != nil {
			return err
		}
		res := sarif.NewRuleResult(sarifRule(run, f)).
			WithLevel(level).
			WithMessage(sarif.NewTextMessage(f.object() + ": " + messages(group))).
			WithLocations([]*sarif.Location{loc})
		res.Properties = sarif.Properties{"result": string(f.Result)}
		run.AddResult(res)
	}
	report.AddRun(run)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}

// sarifRule adds to run the rule that the object's worst finding f is a result of, with its
// help text, and returns its ID: the policy rule's name, or refusedRule for an object the
// API server would refuse.
func sarifRule(run *sarif.Run, f Finding) string {
	if f.Result == Error {
		run.AddRule(refusedRule).
			WithShortDescription(sarif.NewMultiformatMessageString("The API server would refuse the object")).
			WithTextHelp("The object's replica fields (spec.replicas; an HPA's minReplicas and maxReplicas) must be whole numbers from 0 to 2147483647, and it needs a name: the API server refuses it as it is, so replica-policy does not judge it. Fix the field the message names.")
		return refusedRule
	}
	rule := f.Rule()
	run.AddRule(rule.Name).
		WithShortDescription(sarif.NewMultiformatMessageString(fmt.Sprintf("replica policy rule %q: spec.replicas, and the range of an HPA of its workloads, within %s, action %s", rule.Name, rule.Bounds, rule.Action))).
		WithTextHelp(fmt.Sprintf("The workloads that replica policy rule %q selects must keep spec.replicas, and their HorizontalPodAutoscalers minReplicas and maxReplicas, within %s. Under action %s the webhook %s. Set the value inside the bounds in the manifest, or change the rule in the policy.",
			rule.Name, rule.Bounds, rule.Action, actionEffect(rule.Action)))
	return rule.Name
}

// sarifLocation is where the findings of one object are: its file, relative to base, and the
// lines of the fields they name; or, for stdin and live objects, a logical location that
// names the object (and the line in stdin).
func sarifLocation(group []Finding, base string) (*sarif.Location, error) {
	f, loc := group[0], sarif.NewLocation()
	if f.File == "" || f.File == stdinName {
		name := fmt.Sprintf("%s/%s/%s", f.Subject.Namespace, f.Kind(), f.Name())
		if f.File == stdinName {
			name = fmt.Sprintf("%s:%d %s", stdinName, f.FieldLine(f.Field), name)
		}
		loc.AddLogicalLocations(sarif.NewLogicalLocation().WithFullyQualifiedName(name).WithKind("resource"))
		return loc, nil
	}
	uri, err := artifactURI(f.File, base)
	if err != nil {
		return nil, err
	}
	start, end := f.FieldLine(f.Field), f.FieldLine(group[len(group)-1].Field)
	return loc.WithPhysicalLocation(sarif.NewPhysicalLocation().
		WithArtifactLocation(sarif.NewSimpleArtifactLocation(uri).WithUriBaseId(sarifBase)).
		WithRegion(sarif.NewSimpleRegion(min(start, end), max(start, end)))), nil
}

// actionEffect says what the webhook does under an action, for SARIF help texts.
func actionEffect(a policy.Action) string {
	switch a {
	case policy.ActionDeny:
		return "rejects a create, or an update that changes replicas, outside them"
	case policy.ActionWarn:
		return "admits it with a warning"
	}
	return "moves the value to the nearest bound, so Git and the cluster disagree"
}
