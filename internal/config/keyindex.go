package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// keyIndex maps the keys of a YAML document ("imap.listen",
// "sources[1].name") to their value nodes. yaml.v3's type errors carry only
// a line number; the index lets them name the key, and lets defaults tell
// an absent key from one set to a zero value.
type keyIndex struct {
	values map[string]*yaml.Node
	lines  map[int][]indexEntry // by line of the value node
	keys   map[int][]indexEntry // by line of the key node; path is the mapping's
	budget int                  // nodes left to visit: merge keys can nest aliases exponentially
}

// maxIndexNodes bounds the work of indexing one document. A real config
// has a few hundred nodes; past the bound yaml.v3 rejects the document for
// excessive aliasing anyway.
const maxIndexNodes = 1 << 16

type indexEntry struct {
	path string
	node *yaml.Node
}

func newKeyIndex(root *yaml.Node) *keyIndex {
	ix := &keyIndex{values: map[string]*yaml.Node{}, lines: map[int][]indexEntry{}, keys: map[int][]indexEntry{}, budget: maxIndexNodes}
	ix.walk("", root, 0)
	return ix
}

func (ix *keyIndex) walk(path string, n *yaml.Node, depth int) {
	if depth > 64 || ix.budget <= 0 {
		return
	}
	ix.budget--
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			ix.walk(path, c, depth+1)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				continue
			}
			if k.ShortTag() == "!!merge" {
				// "<<: *base" merges base's keys into this mapping.
				ix.walkMerge(path, v, depth+1)
				continue
			}
			ix.keys[k.Line] = append(ix.keys[k.Line], indexEntry{path, k})
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ix.add(p, v, depth)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ix.add(fmt.Sprintf("%s[%d]", path, i), c, depth)
		}
	}
}

func (ix *keyIndex) walkMerge(path string, v *yaml.Node, depth int) {
	if depth > 64 || ix.budget <= 0 {
		return
	}
	ix.budget--
	switch v.Kind {
	case yaml.AliasNode:
		if v.Alias != nil {
			ix.walkMerge(path, v.Alias, depth+1)
		}
	case yaml.SequenceNode:
		for _, c := range v.Content {
			ix.walkMerge(path, c, depth+1)
		}
	case yaml.MappingNode:
		ix.walk(path, v, depth)
	}
}

func (ix *keyIndex) add(path string, v *yaml.Node, depth int) {
	if _, dup := ix.values[path]; !dup {
		ix.values[path] = v
	}
	ix.lines[v.Line] = append(ix.lines[v.Line], indexEntry{path, v})
	ix.walk(path, v, depth+1)
}

// has reports whether the document sets path to something other than null.
func (ix *keyIndex) has(path string) bool {
	n, ok := ix.values[path]
	if !ok {
		return false
	}
	return !(n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// valueAt finds the one key whose value starts on line and matches what
// yaml.v3 reported (its tag, and its value cut to 7 characters when long).
func (ix *keyIndex) valueAt(line int, tag, value string) (string, *yaml.Node, bool) {
	var found []indexEntry
	for _, e := range ix.lines[line] {
		switch tag {
		case "!!map":
			if e.node.Kind != yaml.MappingNode {
				continue
			}
		case "!!seq":
			if e.node.Kind != yaml.SequenceNode {
				continue
			}
		default:
			if e.node.Kind != yaml.ScalarNode {
				continue
			}
			if v, cut := strings.CutSuffix(value, "..."); cut && len(e.node.Value) > 10 {
				if !strings.HasPrefix(e.node.Value, v) {
					continue
				}
			} else if e.node.Value != value {
				continue
			}
		}
		found = append(found, e)
	}
	if len(found) != 1 {
		return "", nil, false
	}
	return found[0].path, found[0].node, true
}

// mappingWithKey finds the mapping that holds key on line.
func (ix *keyIndex) mappingWithKey(line int, key string) (string, bool) {
	for _, e := range ix.keys[line] {
		if e.node.Value == key {
			return e.path, true
		}
	}
	return "", false
}
