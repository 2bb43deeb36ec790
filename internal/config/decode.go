package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// parser holds the state of one parse.
type parser struct {
	baseDir   string
	lookupEnv func(string) (string, bool)
	index     *keyIndex
	problems  []string
	warnings  []string
	bad       map[string]bool  // keys whose value failed to decode
	dropped   map[string][]int // list key → indices of items that failed to decode
	inline    []inlineSecret   // passwords written in the file itself
}

type inlineSecret struct{ key, instead string }

func newParser(baseDir string, lookupEnv func(string) (string, bool)) *parser {
	return &parser{baseDir: baseDir, lookupEnv: lookupEnv, bad: map[string]bool{}, dropped: map[string][]int{}}
}

func (p *parser) parse(data []byte) (*Config, []string, error) {
	// First pass: the document as a node tree, to know where each key is.
	root, extra, err := parseNodes(data)
	switch {
	case err != nil:
		return nil, nil, &Error{Problems: []string{syntaxProblem(data, err)}}
	case extra != nil:
		return nil, nil, &Error{Problems: []string{fmt.Sprintf("line %d: a second YAML document; the config must be one document", extra.Line)}}
	}
	p.index = newKeyIndex(root)

	// Second pass: strict decoding into the typed struct.
	cfg := new(Config)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && err != io.EOF {
		var terr *yaml.TypeError
		if !errors.As(err, &terr) {
			return nil, nil, &Error{Problems: []string{syntaxProblem(data, err)}}
		}
		for _, msg := range terr.Errors {
			p.decodeProblem(msg)
		}
	}

	p.emptyItems()
	applyDefaults(cfg, p)
	p.check(cfg)
	if len(p.problems) > 0 {
		return nil, p.warnings, &Error{Problems: p.problems}
	}
	return cfg, p.warnings, nil
}

func (p *parser) errorf(key, format string, args ...any) {
	if p.isBad(key) {
		return // the decode error already said what is wrong here
	}
	p.problems = append(p.problems, key+": "+fmt.Sprintf(format, args...))
}

func (p *parser) warnf(key, format string, args ...any) {
	p.warnings = append(p.warnings, key+": "+fmt.Sprintf(format, args...))
}

// markBad notes that key failed to decode. yaml.v3 drops a list item that
// fails to decode, so the items after it move up; elem undoes that.
func (p *parser) markBad(key string) {
	p.bad[key] = true
	if !strings.HasSuffix(key, "]") {
		return
	}
	i := strings.LastIndex(key, "[")
	n, err := strconv.Atoi(key[i+1 : len(key)-1])
	if err != nil {
		return
	}
	list := key[:i]
	if !slices.Contains(p.dropped[list], n) {
		p.dropped[list] = append(p.dropped[list], n)
		slices.Sort(p.dropped[list])
	}
}

// elem returns the key of the i-th decoded item of a list: its index in
// the file, counting the items that were dropped.
func (p *parser) elem(list string, i int) string {
	for _, d := range p.dropped[list] {
		if d <= i {
			i++
		}
	}
	return fmt.Sprintf("%s[%d]", list, i)
}

func (p *parser) has(key string) bool { return p.index.has(key) }

// emptyItems reports null items of the config's lists, which yaml.v3
// drops without a word.
func (p *parser) emptyItems() {
	lists := map[string]string{"sources": "lock", "users": "sources"}
	for _, list := range []string{"sources", "users"} {
		p.emptyItemsOf(list)
		if n := p.index.values[list]; n != nil && n.Kind == yaml.SequenceNode {
			for i := range n.Content {
				p.emptyItemsOf(fmt.Sprintf("%s[%d].%s", list, i, lists[list]))
			}
		}
	}
}

func (p *parser) emptyItemsOf(list string) {
	n := p.index.values[list]
	if n == nil || n.Kind != yaml.SequenceNode {
		return
	}
	for i, item := range n.Content {
		if item.Kind == yaml.ScalarNode && item.ShortTag() == "!!null" {
			key := fmt.Sprintf("%s[%d]", list, i)
			p.errorf(key, "empty list item")
			p.markBad(key)
		}
	}
}

// isBad reports whether key, or a key containing it, failed to decode.
func (p *parser) isBad(key string) bool {
	for {
		if p.bad[key] {
			return true
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return p.bad[""]
		}
		key = key[:i]
	}
}

var (
	reUnknownField  = regexp.MustCompile(`^line (\d+): field (.*) not found in type \S+$`)
	reFieldSetTwice = regexp.MustCompile(`^line (\d+): field (.*) already set in type \S+$`)
	reDuplicateKey  = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	reCannotDecode  = regexp.MustCompile("(?s)^line (\\d+): cannot unmarshal (\\S+)(?: `(.*)`)? into (.+)$")
)

// decodeProblem turns one of yaml.v3's type errors into a problem that
// names the key where it can, and notes the key as bad so that validation
// does not report the same value twice.
func (p *parser) decodeProblem(msg string) {
	if m := reUnknownField.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.problems = append(p.problems, p.unknownKey(line, m[2]))
		return
	}
	if m := reFieldSetTwice.FindStringSubmatch(msg); m != nil {
		p.problems = append(p.problems, fmt.Sprintf("line %s: key %s set twice", m[1], quoteShort(m[2])))
		return
	}
	if m := reDuplicateKey.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		key, err := strconv.Unquote(m[2])
		if err != nil {
			key = m[2]
		}
		// yaml.v3 skips a mapping with a duplicate key entirely.
		if parent, ok := p.index.mappingWithKey(line, key); ok {
			p.markBad(parent)
		}
		p.problems = append(p.problems, fmt.Sprintf("line %s: duplicate key %s (first at line %s)", m[1], quoteShort(key), m[3]))
		return
	}
	m := reCannotDecode.FindStringSubmatch(msg)
	if m == nil {
		p.problems = append(p.problems, msg)
		return
	}
	line, _ := strconv.Atoi(m[1])
	tag, value, into := m[2], m[3], m[4]
	if into == configTypeName {
		p.bad[""] = true
		p.problems = append(p.problems, fmt.Sprintf("line %d: expected a mapping of keys, got %s", line, describeTag(tag)))
		return
	}
	key, node, ok := p.index.valueAt(line, tag, value)
	if ok {
		p.markBad(key)
		if node.Kind == yaml.ScalarNode {
			value = node.Value
		}
	} else {
		key = "line " + m[1]
	}
	want := describeGoType(into)
	got := describeTag(tag)
	switch {
	case got == "a mapping" || got == "a list" || got == "null":
		p.problems = append(p.problems, fmt.Sprintf("%s: expected %s, got %s", key, want, got))
	case want == "a duration":
		hint := ""
		if _, err := strconv.ParseFloat(value, 64); err == nil && len(value) < 20 {
			hint = ` (a unit is required, e.g. "` + value + `s")`
		}
		p.problems = append(p.problems, fmt.Sprintf("%s: invalid duration %s%s", key, quoteShort(value), hint))
	case want == "an integer":
		p.problems = append(p.problems, fmt.Sprintf("%s: invalid integer %s", key, quoteShort(value)))
	case want == "true or false":
		p.problems = append(p.problems, fmt.Sprintf("%s: invalid boolean %s (want true or false)", key, quoteShort(value)))
	default:
		// Never echo the value here: a secret put under the wrong key
		// lands in this branch.
		p.problems = append(p.problems, fmt.Sprintf("%s: expected %s, got %s", key, want, got))
	}
}

// The names yaml.v3 gives this package's types in its errors.
var (
	configTypeName = reflect.TypeFor[Config]().String()
	secretTypeName = reflect.TypeFor[Secret]().String()
)

func describeGoType(t string) string {
	switch {
	case t == "time.Duration":
		return "a duration"
	case t == "bool":
		return "true or false"
	case t == "string" || t == secretTypeName:
		return "a string"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "a mapping"
}

func describeTag(tag string) string {
	switch tag {
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	case "!!null":
		return "null"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!str":
		return "a string"
	}
	return "a value tagged " + tag
}

// quoteShort quotes a (non-secret) value for a message, cut to a sane
// length.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return strconv.Quote(s)
}
