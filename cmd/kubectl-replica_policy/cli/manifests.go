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

// readManifests reads every object of paths: files, folders (recursively, in lexical
// order) and "-" for stdin. Multi-document YAML and JSON are split with the API machinery's
// YAML reader, and the items of a List are objects of their own.
func readManifests(paths []string, stdin io.Reader) ([]Object, error) {
	var objs []Object
	readStdin := false
	for _, p := range paths {
		if p == "-" {
			if readStdin {
				continue
			}
			readStdin = true
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			o, err := decodeManifest(stdinName, data)
			if err != nil {
				return nil, err
			}
			objs = append(objs, o...)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			o, err := readManifestFile(p)
			if err != nil {
				return nil, err
			}
			objs = append(objs, o...)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !hasManifestExtension(path) {
				return err
			}
			o, err := readManifestFile(path)
			objs = append(objs, o...)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return objs, nil
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

func readManifestFile(path string) ([]Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeManifest(filepath.ToSlash(path), data)
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
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []document
	pos, line := 0, 1
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", file, line, oneLine(err.Error()))
		}
		start := pos
		if i := bytes.Index(data[pos:], doc); i >= 0 {
			start = pos + i
		}
		line += bytes.Count(data[pos:start], []byte("\n"))
		docs = append(docs, document{data: doc, line: line})
		line += bytes.Count(doc, []byte("\n"))
		pos = start + len(doc)
	}
}

// decodeManifest returns the objects of a file: every document that is a mapping with a
// kind, and the items of those that are Lists. Documents that are empty, comments only, or
// not objects (a Helm values file, a list) are not Kubernetes objects and are ignored.
func decodeManifest(file string, data []byte) ([]Object, error) {
	docs, err := splitDocuments(file, data)
	if err != nil {
		return nil, err
	}
	var objs []Object
	for _, d := range docs {
		first := d.line + leadingLines(d.data)
		js, err := yaml.ToJSON(d.data)
		if err != nil {
			return nil, yamlError(file, d.line, err)
		}
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil || m == nil {
			continue // null, a scalar or a sequence: not an object
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" {
			continue
		}
		if !u.IsList() {
			objs = append(objs, Object{Source: Source{File: file, Line: first}, Unstructured: u})
			continue
		}
		list, err := u.ToList()
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %v", file, first, u.GetKind(), err)
		}
		lines := itemLines(d.data)
		for i := range list.Items {
			line := first
			if i < len(lines) {
				line = d.line + lines[i] - 1
			}
			objs = append(objs, Object{Source: Source{File: file, Line: line}, Unstructured: &list.Items[i]})
		}
	}
	return objs, nil
}

// leadingLines counts the blank and comment lines before a document's content.
func leadingLines(doc []byte) int {
	n := 0
	for _, l := range strings.SplitAfter(string(doc), "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			break
		}
		n++
	}
	return n
}

// itemLines returns the line, within doc, of each item of a List's items. It returns nil
// when doc cannot be read that way; the items are then located at the List's first line.
func itemLines(doc []byte) []int {
	var root yaml3.Node
	if err := yaml3.Unmarshal(doc, &root); err != nil || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	if m.Kind != yaml3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "items" || m.Content[i+1].Kind != yaml3.SequenceNode {
			continue
		}
		var lines []int
		for _, item := range m.Content[i+1].Content {
			lines = append(lines, item.Line)
		}
		return lines
	}
	return nil
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
