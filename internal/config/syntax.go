package config

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// parseNodes parses data as YAML nodes: the first document, and the start
// of a second one if there is one (nil otherwise).
func parseNodes(data []byte) (root, extra *yaml.Node, err error) {
	root = new(yaml.Node)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(root); err != nil && err != io.EOF {
		return nil, nil, err
	}
	extra = new(yaml.Node)
	switch err := dec.Decode(extra); {
	case err == io.EOF:
		return root, nil, nil
	case err != nil:
		return nil, nil, err
	}
	return root, extra, nil
}

var reYAMLLine = regexp.MustCompile(`^line (\d+): (?s)(.*)$`)

// splitSyntaxError splits one of yaml.v3's syntax errors into its line (0
// when it names none) and its problem.
func splitSyntaxError(err error) (line int, problem string) {
	msg, _ := strings.CutPrefix(err.Error(), "yaml: ")
	if m := reYAMLLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, msg
}

// maxSyntaxSearch bounds the lines syntaxProblem re-parses: a config file
// is tens or hundreds of lines; past this the line yaml.v3 gives is kept.
const maxSyntaxSearch = 4000

// syntaxProblem turns a YAML syntax error in data into "line N: problem",
// N being the line where the problem is. yaml.v3 names the line where the
// enclosing block starts (a key indented wrong three lines into a source
// is reported at "sources:"), or no line at all ("unknown anchor"). The
// line at fault is the last of the shortest prefix of the document, in
// whole lines, that fails with the same problem; the search starts at the
// line yaml.v3 named, which is never after the fault.
func syntaxProblem(data []byte, err error) string {
	line, problem := splitSyntaxError(err)
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines)-line <= maxSyntaxSearch && !strings.Contains(problem, "excessive aliasing") {
		prefix := bytes.Join(lines[:max(line-1, 0)], nil)
		for k := max(line, 1); k <= len(lines); k++ {
			prefix = append(prefix, lines[k-1]...)
			if _, _, err := parseNodes(prefix); err != nil {
				if _, p := splitSyntaxError(err); p == problem {
					line = k
					break
				}
			}
		}
	}
	if line == 0 {
		return err.Error()
	}
	return fmt.Sprintf("line %d: %s", line, problem)
}
