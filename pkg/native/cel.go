package native

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// The CEL text of the policy's matchers. Every function returns an expression that stands
// alone (parenthesized where it combines terms), so that callers join them with && and ||.

// quote returns s as a CEL string literal: single quotes, with backslash, quote and every
// non-printable rune escaped.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\\' || r == '\'':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// quoteList returns a CEL list literal of strings.
func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// and joins terms with &&; no term is true.
func and(terms ...string) string { return andJoin(" && ", terms) }

// andLines is and with a term a line, for the terms of a condition a reviewer reads (CEL
// reads a line break as a space).
func andLines(terms ...string) string { return andJoin(" &&\n", terms) }

func andJoin(sep string, terms []string) string {
	if slices.Contains(terms, "false") {
		return "false"
	}
	terms = slices.DeleteFunc(slices.Clone(terms), func(s string) bool { return s == "" || s == "true" })
	switch len(terms) {
	case 0:
		return "true"
	case 1:
		return terms[0]
	}
	return "(" + strings.Join(terms, sep) + ")"
}

// or joins terms with ||; no term is false.
func or(terms ...string) string {
	switch len(terms) {
	case 0:
		return "false"
	case 1:
		return terms[0]
	}
	return "(" + strings.Join(terms, " || ") + ")"
}

// globRegexp translates a shell-style glob, as path.Match reads it, into an anchored RE2
// regular expression (the dialect of CEL's matches()): * is any run of characters but /,
// ? one character but /, [...] a class ([^...] negated, a-z ranges), \ escapes the next
// character. The glob is valid (the policy's validation ran path.Match on it).
func globRegexp(glob string) string {
	var b strings.Builder
	b.WriteByte('^')
	for i := 0; i < len(glob); {
		c := glob[i]
		switch c {
		case '*':
			b.WriteString(`[^/]*`)
			i++
		case '?':
			b.WriteString(`[^/]`)
			i++
		case '\\':
			r, n := nextRune(glob[i+1:])
			b.WriteString(regexp.QuoteMeta(string(r)))
			i += 1 + n
		case '[':
			i++
			b.WriteByte('[')
			if i < len(glob) && glob[i] == '^' {
				b.WriteByte('^')
				i++
			}
			for i < len(glob) && glob[i] != ']' {
				lo, n := classChar(glob[i:])
				i += n
				b.WriteString(lo)
				if i < len(glob) && glob[i] == '-' {
					hi, n := classChar(glob[i+1:])
					i += 1 + n
					b.WriteString("-" + hi)
				}
			}
			b.WriteByte(']')
			i++ // the closing ]
		default:
			r, n := nextRune(glob[i:])
			b.WriteString(regexp.QuoteMeta(string(r)))
			i += n
		}
	}
	b.WriteByte('$')
	return b.String()
}

// classChar reads one character of a class (a \-escaped one too) and returns it escaped for
// an RE2 class, with the bytes it took.
func classChar(s string) (string, int) {
	n := 0
	if s != "" && s[0] == '\\' {
		n = 1
	}
	r, m := nextRune(s[n:])
	return fmt.Sprintf(`\x{%x}`, r), n + m
}

func nextRune(s string) (rune, int) {
	for i, r := range s {
		if i == 0 {
			n := len(string(r))
			return r, n
		}
	}
	return 0, 0
}

// namespacesTerm is true when the namespace expression ns is one of names or matches one of
// globs: a list membership for the names, a prefix or suffix test for a glob of one * at an
// end, a regular expression for any other glob.
func namespacesTerm(ns string, names, globs []string) string {
	var terms []string
	switch len(names) {
	case 0:
	case 1:
		terms = append(terms, ns+" == "+quote(names[0]))
	default:
		terms = append(terms, ns+" in "+quoteList(names))
	}
	for _, g := range globs {
		terms = append(terms, globTerm(ns, g))
	}
	return or(terms...)
}

// globTerm is true when the string expression s matches glob.
func globTerm(s, glob string) string {
	if rest, ok := strings.CutSuffix(glob, "*"); ok && !strings.ContainsAny(rest, `*?[\`) {
		return fmt.Sprintf("%s.startsWith(%s)", s, quote(rest))
	}
	if rest, ok := strings.CutPrefix(glob, "*"); ok && !strings.ContainsAny(rest, `*?[\`) {
		return fmt.Sprintf("%s.endsWith(%s)", s, quote(rest))
	}
	return fmt.Sprintf("%s.matches(%s)", s, quote(globRegexp(glob)))
}

// selectorTerm is true when the labels of the map expression m match sel, with the
// semantics of labels.Selector: every requirement holds; NotIn and DoesNotExist hold for
// an absent key. A nil (or empty) selector is true.
func selectorTerm(m string, sel labels.Selector) string {
	if sel == nil {
		return "true"
	}
	reqs, _ := sel.Requirements()
	var terms []string
	for _, r := range reqs {
		key := quote(r.Key())
		has := key + " in " + m
		val := m + "[" + key + "]"
		values := r.Values().List() // sorted
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			if len(values) == 1 {
				terms = append(terms, and(has, val+" == "+quote(values[0])))
			} else {
				terms = append(terms, and(has, val+" in "+quoteList(values)))
			}
		case selection.NotEquals, selection.NotIn:
			if len(values) == 1 {
				terms = append(terms, or("!("+has+")", val+" != "+quote(values[0])))
			} else {
				terms = append(terms, or("!("+has+")", "!("+val+" in "+quoteList(values)+")"))
			}
		case selection.Exists:
			terms = append(terms, has)
		case selection.DoesNotExist:
			terms = append(terms, "!("+has+")")
		default:
			// LabelSelectorAsSelector makes only the operators above; Gt and Lt come from
			// the string syntax, which a policy cannot use.
			panic(fmt.Sprintf("label selector operator %q", r.Operator()))
		}
	}
	return and(terms...)
}

// intList renders a CEL list of ints.
func intList(xs []int64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatInt(x, 10)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// boolList renders a CEL list of bools.
func boolList(xs []bool) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatBool(x)
	}
	return "[" + strings.Join(s, ", ") + "]"
}
