package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// rePlainKey is a key that can be written into a path as it is.
var rePlainKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// unknownKey is the problem of a key the schema does not have, at line:
// its path, and the known key it was probably meant to be
// ("sources[0].pol_interval: unknown key; did you mean poll_interval?").
func (p *parser) unknownKey(line int, key string) string {
	parent, ok := p.index.mappingWithKey(line, key)
	if !ok || !rePlainKey.MatchString(key) {
		return fmt.Sprintf("line %d: unknown key %s", line, quoteShort(key))
	}
	path := key
	if parent != "" {
		path = parent + "." + key
	}
	if s := closestKey(key, keysAt(parent)); s != "" {
		return fmt.Sprintf("%s: unknown key; did you mean %s?", path, s)
	}
	return path + ": unknown key"
}

// keysAt returns the keys the schema allows in the mapping at path ("" for
// the top level, "sources[2]" for a source), in the schema's order, or
// nil when path is not a mapping of the schema. It reads the yaml tags of
// the types in schema.go, so a new field is known here with no more work.
func keysAt(path string) []string {
	t := reflect.TypeFor[Config]()
	if path != "" {
		for _, seg := range strings.Split(path, ".") {
			name, _, _ := strings.Cut(seg, "[")
			f, ok := fieldOfKey(t, name)
			if !ok {
				return nil
			}
			t = f.Type
			for t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map || t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() != reflect.Struct {
				return nil
			}
		}
	}
	var keys []string
	for f := range t.Fields() {
		if k := yamlKey(f); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func fieldOfKey(t reflect.Type, key string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for f := range t.Fields() {
		if yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlKey is the key of a struct field as yaml.v3 decodes it ("" for a
// field the file cannot set).
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(f.Name)
	}
	return name
}

// closestKey returns the known key nearest to key in edit distance, if it
// is near enough to be a typo (at most a third of the key's letters
// changed, and at least one letter unchanged); "" otherwise.
func closestKey(key string, known []string) string {
	best, bestDist := "", len(key)/3+1
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestDist && d < len(k) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b,
// in bytes: insertions, deletions, substitutions and transpositions of
// two neighbours ("tpye" is one from "type") each count one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
