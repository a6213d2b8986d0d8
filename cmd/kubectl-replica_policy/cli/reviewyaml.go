package cli

import (
	"bytes"
	"slices"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
)

// flowWidth is the longest a list of scalars may be, written on one line, to be written in
// flow style ([CREATE, UPDATE]): what a reviewer reads at a glance. Longer lists stay a
// line an item.
const flowWidth = 72

// reviewYAML writes v (JSON-shaped: maps, lists, scalars) as YAML for a reviewer, as kubectl
// indents it: keys sorted but a list item's name first, short lists of scalars on one line,
// CEL expressions in the quotes that need no escapes (double quotes around CEL's single
// ones; a literal block where both occur or the expression has line breaks).
func reviewYAML(v any) ([]byte, error) {
	var doc yaml3.Node
	if err := doc.Encode(v); err != nil {
		return nil, err
	}
	restyle(&doc)
	var buf bytes.Buffer
	enc := yaml3.NewEncoder(&buf)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// restyle sets, below n, the styles reviewYAML promises.
func restyle(n *yaml3.Node) {
	switch n.Kind {
	case yaml3.SequenceNode:
		if flowable(n) {
			n.Style = yaml3.FlowStyle
			return
		}
	case yaml3.ScalarNode:
		n.Style = quoting(n)
		return
	case yaml3.MappingNode:
		nameFirst(n)
	}
	for _, c := range n.Content {
		restyle(c)
	}
}

// flowable reports whether the sequence n holds only short single-line scalars that fit
// within flowWidth together.
func flowable(n *yaml3.Node) bool {
	width := 2
	for _, c := range n.Content {
		if c.Kind != yaml3.ScalarNode || strings.ContainsAny(c.Value, "\n,[]{}:#'\"") {
			return false
		}
		width += len(c.Value) + 2
	}
	return len(n.Content) > 0 && width <= flowWidth
}

// quoting is the style of scalar n: strings with line breaks, or with single quotes and a
// double quote or backslash (which double quotes would escape), as literal blocks; those
// with single quotes only in double quotes; the rest as the encoder chooses.
func quoting(n *yaml3.Node) yaml3.Style {
	v := n.Value
	switch {
	case n.Tag != "!!str":
		return n.Style
	case strings.Contains(v, "\n"), strings.Contains(v, "'") && strings.ContainsAny(v, "\"\\"):
		return yaml3.LiteralStyle
	case strings.Contains(v, "'"):
		return yaml3.DoubleQuotedStyle
	}
	return n.Style
}

// nameFirst moves the key "name" of mapping n to the front: a list of variables or
// conditions reads by name.
func nameFirst(n *yaml3.Node) {
	for i := 2; i < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			kv := slices.Clone(n.Content[i : i+2])
			copy(n.Content[2:i+2], n.Content[0:i])
			copy(n.Content[0:2], kv)
			return
		}
	}
}
