package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// stdinName is how objects read from standard input ("-") are located in the output.
const stdinName = "stdin"

// Object is one Kubernetes object of a manifest, with its file and first line.
type Object struct {
	Source
	*unstructured.Unstructured
}

// manifestExtensions are the files read from a folder; a file named on the command line is
// read whatever its name.
var manifestExtensions = []string{".yaml", ".yml", ".json"}

// errNoObject is the reason an input holds nothing to check: a CI gate must never pass on
// it, as when `kustomize build | check -f -` runs without pipefail and the build fails.
var errNoObject = errors.New("holds no Kubernetes object: nothing to check (an empty file, or a failed kustomize build?)")

// readManifests reads every object of paths, in order, and hands each to visit: files,
// folders (recursively, in lexical order) and "-" for stdin. Multi-document YAML and JSON
// are split with the API machinery's YAML reader, and the items of a List are objects of
// their own. Objects are not kept: memory stays about the size of the largest file. A path
// that holds no object at all is an error.
func readManifests(paths []string, stdin io.Reader, visit func(Object) error) error {
	readStdin := false
	for _, p := range paths {
		if p == "-" {
			if readStdin {
				continue
			}
			readStdin = true
			data, err := io.ReadAll(stdin)
			if err != nil {
				return fmt.Errorf("reading stdin: %w", err)
			}
			n, err := visitManifest(stdinName, data, visit)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("-f -: stdin %w", errNoObject)
			}
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !info.IsDir() {
			n, err := readManifestFile(p, visit)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("-f %s: the file %w", p, errNoObject)
			}
			continue
		}
		total := 0
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !hasManifestExtension(path) {
				return err
			}
			n, err := readManifestFile(path, visit)
			total += n
			return err
		})
		if err != nil {
			return err
		}
		if total == 0 {
			return fmt.Errorf("-f %s: the folder (its %s files) %w", p, strings.Join(manifestExtensions, ", "), errNoObject)
		}
	}
	return nil
}

func hasManifestExtension(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	for _, e := range manifestExtensions {
		if ext == e {
			return true
		}
	}
	return false
}

func readManifestFile(path string, visit func(Object) error) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return visitManifest(filepath.ToSlash(path), data, visit)
}

// document is one YAML document of a file and the line it starts on.
type document struct {
	data []byte
	line int // the line of data's first byte in the file
}

// splitDocuments splits data into its YAML documents with the API machinery's YAML reader,
// which returns each document's lines verbatim (only "---" separators are dropped): each is
// found again in data to learn its first line.
func splitDocuments(file string, data []byte) ([]document, error) {
	var docs []document
	err := eachDocument(file, data, func(d document) error {
		docs = append(docs, d)
		return nil
	})
	return docs, err
}

// eachDocument is splitDocuments, handing each document to visit as it is read.
func eachDocument(file string, data []byte, visit func(document) error) error {
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	pos, line := 0, 1
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %v", file, line, oneLine(err.Error()))
		}
		start := pos
		if i := bytes.Index(data[pos:], doc); i >= 0 {
			start = pos + i
		}
		line += bytes.Count(data[pos:start], []byte("\n"))
		if err := visit(document{data: doc, line: line}); err != nil {
			return err
		}
		line += bytes.Count(doc, []byte("\n"))
		pos = start + len(doc)
	}
}

// decodeManifest returns the objects of a file (see visitManifest).
func decodeManifest(file string, data []byte) ([]Object, error) {
	var objs []Object
	_, err := visitManifest(file, data, func(o Object) error {
		objs = append(objs, o)
		return nil
	})
	return objs, err
}

// visitManifest hands visit the objects of a file and returns how many there were: every
// document that is a mapping with a kind, and the items of those that are Lists. Documents
// that are empty, comments only, or not objects (a Helm values file, a list) are not
// Kubernetes objects and are ignored. An object of a kind that is judged carries the lines
// of its replica fields.
func visitManifest(file string, data []byte, visit func(Object) error) (int, error) {
	n := 0
	err := eachDocument(file, data, func(d document) error {
		first := d.line + leadingLines(d.data)
		js, err := yaml.ToJSON(d.data)
		if err != nil {
			return yamlError(file, d.line, err)
		}
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil || m == nil {
			return nil // null, a scalar or a sequence: not an object
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" {
			return nil
		}
		if !u.IsList() {
			n++
			src := Source{File: file, Line: first}
			if judged(u) {
				src.FieldLines = docFieldLines(d.data, d.line)
			}
			return visit(Object{Source: src, Unstructured: u})
		}
		list, err := u.ToList()
		if err != nil {
			return fmt.Errorf("%s:%d: %s: %v", file, first, u.GetKind(), err)
		}
		items := listItems(rootNode(d.data))
		for i := range list.Items {
			n++
			src := Source{File: file, Line: first}
			if i < len(items) {
				src.Line = d.line + items[i].Line - 1
				if judged(&list.Items[i]) {
					src.FieldLines = fieldLines(items[i], d.line)
				}
			}
			if err := visit(Object{Source: src, Unstructured: &list.Items[i]}); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// leadingLines counts the blank and comment lines before a document's content, and the
// "---" that the YAML reader leaves at the start of a file's first document.
func leadingLines(doc []byte) int {
	n := 0
	for _, l := range strings.SplitAfter(string(doc), "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") && !(n == 0 && (t == "---" || strings.HasPrefix(t, "--- #"))) {
			break
		}
		n++
	}
	return n
}

// rootNode parses doc for the lines of its fields; nil when it cannot be read that way
// (the object is then located at its first line).
func rootNode(doc []byte) *yaml3.Node {
	var root yaml3.Node
	if err := yaml3.Unmarshal(doc, &root); err != nil || len(root.Content) == 0 {
		return nil
	}
	return root.Content[0]
}

// child returns the value of key in the mapping n, nil when there is none.
func child(n *yaml3.Node, key string) *yaml3.Node {
	if n == nil || n.Kind != yaml3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// listItems returns the nodes of a List's items, nil when the document cannot be read that
// way.
func listItems(root *yaml3.Node) []*yaml3.Node {
	items := child(root, "items")
	if items == nil || items.Kind != yaml3.SequenceNode {
		return nil
	}
	return items.Content
}

// replicaFields are the fields under spec whose lines a judged object's results point at:
// a workload's replicas, an HPA's range, a KEDA ScaledObject's range and idle size.
var replicaFields = [...]string{"replicas", "minReplicas", "maxReplicas", "minReplicaCount", "maxReplicaCount", "idleReplicaCount"}

// fieldLineSet holds the line of each of replicaFields in a file, 0 for one not set.
type fieldLineSet = [len(replicaFields)]int

// docFieldLines is fieldLines of a document, found by reading its lines where it is in
// block style (as good as every manifest: no second YAML parse of each object), by
// parsing it otherwise.
func docFieldLines(doc []byte, docLine int) fieldLineSet {
	if lines, ok := scanFieldLines(doc, docLine); ok {
		return lines
	}
	return fieldLines(rootNode(doc), docLine)
}

// scanFieldLines finds the lines of the replicaFields under spec in a block-style document: the keys one level under a top-level "spec:". ok is false
// for a document it cannot read that way (JSON, flow style, a quoted or complex key).
func scanFieldLines(doc []byte, docLine int) (lines fieldLineSet, ok bool) {
	inSpec, indent := false, 0
	n := 0
	for line := range strings.Lines(string(doc)) {
		n++
		text := strings.TrimRight(line, "\r\n")
		t := strings.TrimSpace(text)
		if t == "" || strings.HasPrefix(t, "#") || t == "---" {
			continue
		}
		depth := len(text) - len(strings.TrimLeft(text, " "))
		if depth == 0 {
			if strings.HasPrefix(t, "{") || strings.HasPrefix(t, "\"") || strings.HasPrefix(t, "'") || strings.HasPrefix(t, "?") {
				return lines, false
			}
			if inSpec {
				return lines, true
			}
			rest, isSpec := strings.CutPrefix(t, "spec:")
			if isSpec {
				if rest, _, _ = strings.Cut(rest, "#"); strings.TrimSpace(rest) != "" {
					return lines, false // spec: {replicas: 3}
				}
				inSpec = true
			}
			continue
		}
		if !inSpec {
			continue
		}
		if indent == 0 {
			indent = depth
		}
		if depth != indent {
			continue
		}
		key, _, found := strings.Cut(t, ":")
		if !found {
			continue
		}
		for i, f := range replicaFields {
			if key == f {
				lines[i] = docLine + n - 1
			} else if strings.Trim(key, `"'`) == f {
				return lines, false
			}
		}
	}
	return lines, true
}

// fieldLines returns the line in the file of each of the object's replicaFields under spec
// that it sets (0 for the others); docLine is the
// file's line of the document's first line.
func fieldLines(obj *yaml3.Node, docLine int) (lines fieldLineSet) {
	spec := child(obj, "spec")
	for i, f := range replicaFields {
		if v := child(spec, f); v != nil {
			lines[i] = docLine + v.Line - 1
		}
	}
	return lines
}

// yamlLine finds the line a YAML parser error names: "yaml: line 3: ...".
var yamlLine = regexp.MustCompile(`yaml: line (\d+): (.*)`)

// yamlError names the file and the line of a malformed document, counted in the file.
func yamlError(file string, docLine int, err error) error {
	msg := oneLine(err.Error())
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return fmt.Errorf("%s:%d: not valid YAML: %s", file, docLine+n-1, m[2])
	}
	return fmt.Errorf("%s:%d: not valid YAML: %s", file, docLine, strings.TrimPrefix(msg, "error converting YAML to JSON: "))
}

// oneLine folds a multi-line message into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
