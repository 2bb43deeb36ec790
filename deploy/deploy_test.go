package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/imapbridge/imapbridge/internal/testtool"
)

// What the files here promise about the binary and the image. Each test
// checks one file against these and against the other files.
const (
	binaryPath    = "/usr/local/bin/imapbridge"
	configPath    = "/etc/imapbridge/imapbridge.yaml"
	dataDir       = "/data"
	adminPort     = "9154"
	imapPort      = "143"
	imapsPort     = "993"
	exampleConfig = "imapbridge.example.yaml"
	// The password whose hash imapbridge.example.yaml carries, as its
	// comment says.
	examplePassword = "changeme"
)

// bridgeMetrics are the metric families imapbridge exports, with their
// types.
var bridgeMetrics = map[string]string{
	"imapbridge_build_info":                            "gauge",
	"imapbridge_imap_connections":                      "gauge",
	"imapbridge_imap_commands_total":                   "counter",
	"imapbridge_imap_command_duration_seconds":         "histogram",
	"imapbridge_auth_attempts_total":                   "counter",
	"imapbridge_imap_limits_total":                     "counter",
	"imapbridge_idle_sessions":                         "gauge",
	"imapbridge_source_polls_total":                    "counter",
	"imapbridge_source_poll_duration_seconds":          "histogram",
	"imapbridge_source_messages_fetched_total":         "counter",
	"imapbridge_source_bytes_fetched_total":            "counter",
	"imapbridge_source_messages_deleted_total":         "counter",
	"imapbridge_source_last_success_timestamp_seconds": "gauge",
	"imapbridge_store_messages":                        "gauge",
	"imapbridge_store_bytes":                           "gauge",
	"imapbridge_store_write_errors_total":              "counter",
	"imapbridge_store_rollbacks_detected_total":        "counter",
	"imapbridge_store_uidvalidity_resets_total":        "counter",
	"imapbridge_panics_recovered_total":                "counter",
	"imapbridge_users_ready":                           "gauge",
	"imapbridge_users":                                 "gauge",
	"imapbridge_source_messages_pending":               "gauge",
	"imapbridge_source_messages_would_delete":          "gauge",
	"imapbridge_source_host_messages":                  "gauge",
	"imapbridge_source_foreign_deletions_total":        "counter",
}

// otherMetrics are the families of client_golang's default Go and process
// collectors (v1.25, Linux), and the series Prometheus makes itself.
var otherMetrics = map[string]string{
	"go_gc_duration_seconds":               "summary",
	"go_gc_gogc_percent":                   "gauge",
	"go_gc_gomemlimit_bytes":               "gauge",
	"go_goroutines":                        "gauge",
	"go_info":                              "gauge",
	"go_memstats_alloc_bytes":              "gauge",
	"go_memstats_alloc_bytes_total":        "counter",
	"go_memstats_buck_hash_sys_bytes":      "gauge",
	"go_memstats_frees_total":              "counter",
	"go_memstats_gc_sys_bytes":             "gauge",
	"go_memstats_heap_alloc_bytes":         "gauge",
	"go_memstats_heap_idle_bytes":          "gauge",
	"go_memstats_heap_inuse_bytes":         "gauge",
	"go_memstats_heap_objects":             "gauge",
	"go_memstats_heap_released_bytes":      "gauge",
	"go_memstats_heap_sys_bytes":           "gauge",
	"go_memstats_last_gc_time_seconds":     "gauge",
	"go_memstats_mallocs_total":            "counter",
	"go_memstats_mcache_inuse_bytes":       "gauge",
	"go_memstats_mcache_sys_bytes":         "gauge",
	"go_memstats_mspan_inuse_bytes":        "gauge",
	"go_memstats_mspan_sys_bytes":          "gauge",
	"go_memstats_next_gc_bytes":            "gauge",
	"go_memstats_other_sys_bytes":          "gauge",
	"go_memstats_stack_inuse_bytes":        "gauge",
	"go_memstats_stack_sys_bytes":          "gauge",
	"go_memstats_sys_bytes":                "gauge",
	"go_sched_gomaxprocs_threads":          "gauge",
	"go_threads":                           "gauge",
	"process_cpu_seconds_total":            "counter",
	"process_max_fds":                      "gauge",
	"process_network_receive_bytes_total":  "counter",
	"process_network_transmit_bytes_total": "counter",
	"process_open_fds":                     "gauge",
	"process_resident_memory_bytes":        "gauge",
	"process_start_time_seconds":           "gauge",
	"process_virtual_memory_bytes":         "gauge",
	"process_virtual_memory_max_bytes":     "gauge",
	"up":                                   "gauge",
	"ALERTS":                               "gauge",
	"ALERTS_FOR_STATE":                     "gauge",
}

// The alerts alerts.yml must define.
var requiredAlerts = []string{
	"ImapbridgeDown",
	"ImapbridgeSourceDown",
	"ImapbridgeNoSuccessfulPoll",
	"ImapbridgeAuthFailureSpike",
	"ImapbridgeStoreWriteErrors",
	"ImapbridgeUIDValidityReset",
	"ImapbridgePanics",
	"ImapbridgeForeignDeletionsAfterSwitch",
}

// ---- files ----------------------------------------------------------------

// deployDir is the absolute path of deploy/ (the tests run in it).
func deployDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir(t), filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(readFile(t, name), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// ---- PromQL ---------------------------------------------------------------

var (
	rePromString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	rePromIdent  = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
)

// metricNames returns the metric names an expression selects: identifiers
// with a metric prefix this project knows, outside string literals. It is
// no PromQL parser, but label names and functions never carry these
// prefixes.
func metricNames(expr string) []string {
	expr = rePromString.ReplaceAllString(expr, `""`)
	var names []string
	for _, id := range rePromIdent.FindAllString(expr, -1) {
		if strings.HasPrefix(id, "imapbridge_") || strings.HasPrefix(id, "go_") ||
			strings.HasPrefix(id, "process_") || id == "up" || strings.HasPrefix(id, "ALERTS") {
			names = append(names, id)
		}
	}
	return names
}

// checkMetric says whether a series name exists, and returns the family
// it belongs to.
func checkMetric(name string) (family string, err error) {
	if typ, ok := bridgeMetrics[name]; ok {
		if typ == "histogram" {
			return "", fmt.Errorf("%s is a histogram: select %[1]s_bucket, %[1]s_sum or %[1]s_count", name)
		}
		return name, nil
	}
	if _, ok := otherMetrics[name]; ok {
		return name, nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		typ := bridgeMetrics[base]
		if typ == "" {
			typ = otherMetrics[base]
		}
		if typ == "histogram" || (typ == "summary" && suffix != "_bucket") {
			return base, nil
		}
	}
	return "", fmt.Errorf("unknown metric %s", name)
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	got := metricNames(`histogram_quantile(0.9, sum by (le) (rate(imapbridge_imap_command_duration_seconds_bucket{instance=~"imapbridge_x", listener="go_away"}[5m]))) and on (job) up == 0 or process_open_fds`)
	want := []string{"imapbridge_imap_command_duration_seconds_bucket", "up", "process_open_fds"}
	if !slices.Equal(got, want) {
		t.Errorf("metricNames = %q, want %q", got, want)
	}
	for name, ok := range map[string]bool{
		"imapbridge_store_messages":                       true,
		"imapbridge_source_poll_duration_seconds_bucket":  true,
		"imapbridge_source_poll_duration_seconds":         false,
		"imapbridge_store_messages_bucket":                false,
		"imapbridge_store_message":                        false,
		"go_gc_duration_seconds_count":                    true,
		"go_gc_duration_seconds_bucket":                   false,
		"imapbridge_imap_command_duration_seconds_count":  true,
		"imapbridge_source_last_success_timestamp_second": false,
	} {
		if _, err := checkMetric(name); (err == nil) != ok {
			t.Errorf("checkMetric(%s) = %v, want ok=%v", name, err, ok)
		}
	}
}

// ---- Dockerfile -----------------------------------------------------------

type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// parseDockerfile splits a Dockerfile into instructions, joining
// continuation lines and dropping comments (parser directives included).
func parseDockerfile(data string) ([]instruction, error) {
	var (
		out   []instruction
		cur   []string
		start int
	)
	for i, line := range strings.Split(data, "\n") {
		s := strings.TrimSpace(line)
		if s == "" || strings.HasPrefix(s, "#") {
			continue // also inside a continuation, as Docker does
		}
		if len(cur) == 0 {
			start = i + 1
		}
		if rest, ok := strings.CutSuffix(s, `\`); ok {
			cur = append(cur, strings.TrimSpace(rest))
			continue
		}
		cur = append(cur, s)
		full := strings.Join(cur, " ")
		cur = nil
		cmd, args, _ := strings.Cut(full, " ")
		out = append(out, instruction{start, strings.ToUpper(cmd), strings.TrimSpace(args)})
	}
	if len(cur) > 0 {
		return nil, fmt.Errorf("line %d: continuation at the end of the file", start)
	}
	return out, nil
}

type stage struct {
	image, name string
	ins         []instruction
}

func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s *stage) last(cmd string) (instruction, bool) {
	all := s.all(cmd)
	if len(all) == 0 {
		return instruction{}, false
	}
	return all[len(all)-1], true
}

// splitFlags splits "--a=b --c=d rest" into the flags and the rest.
func splitFlags(args string) (flags map[string]string, rest []string) {
	flags = map[string]string{}
	fields := strings.Fields(args)
	for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(fields[0], "--"), "=")
		flags[k] = v
		fields = fields[1:]
	}
	return flags, fields
}

func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil {
		t.Fatalf("Dockerfile line %d: %s %s: want the exec (JSON) form: %v", in.line, in.cmd, in.args, err)
	}
	return argv
}

type dockerfile struct {
	stages  []*stage
	globals map[string]string // ARGs before the first FROM, with defaults
}

func loadDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	ins, err := parseDockerfile(string(readFile(t, "Dockerfile")))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	d := &dockerfile{globals: map[string]string{}}
	for _, in := range ins {
		if in.cmd == "FROM" {
			flags, rest := splitFlags(in.args)
			_ = flags
			st := &stage{image: os.Expand(rest[0], func(k string) string { return d.globals[k] })}
			if len(rest) == 3 && strings.EqualFold(rest[1], "AS") {
				st.name = rest[2]
			}
			d.stages = append(d.stages, st)
			continue
		}
		if len(d.stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile line %d: %s before the first FROM", in.line, in.cmd)
			}
			k, v, _ := strings.Cut(in.args, "=")
			d.globals[k] = v
			continue
		}
		st := d.stages[len(d.stages)-1]
		st.ins = append(st.ins, in)
	}
	return d
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	d := loadDockerfile(t)
	if len(d.stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a runtime stage", len(d.stages))
	}
	build, final := d.stages[0], d.stages[len(d.stages)-1]

	// The builder's Go is the one go.mod asks for.
	goMod, err := os.ReadFile(filepath.Join(deployDir(t), "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	if m == nil {
		t.Fatal("go.mod: no go directive")
	}
	goMinor := string(m[1])
	repo, tag, _ := strings.Cut(build.image, ":")
	if repo != "golang" || !(tag == goMinor || strings.HasPrefix(tag, goMinor+".") || strings.HasPrefix(tag, goMinor+"-")) {
		t.Errorf("build stage FROM %s, want golang:%s (go.mod says go %s)", build.image, goMinor, goMinor)
	}
	if strings.HasPrefix(final.image, "golang") {
		t.Errorf("final stage FROM %s: want a small static base", final.image)
	}

	// The build: static, trimmed, versioned, from ./cmd/imapbridge.
	var output string
	for _, in := range build.all("RUN") {
		if !strings.Contains(in.args, "go build") {
			continue
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "./cmd/imapbridge"} {
			if !strings.Contains(in.args, want) {
				t.Errorf("Dockerfile line %d: go build without %s", in.line, want)
			}
		}
		if m := regexp.MustCompile(`\s-o\s+(\S+)`).FindStringSubmatch(in.args); m != nil {
			output = m[1]
		}
	}
	if output == "" {
		t.Fatal("Dockerfile: no go build -o ... in the build stage")
	}
	// go.mod and go.sum are copied before the rest, for layer caching.
	copies := build.all("COPY")
	if len(copies) < 2 || !strings.Contains(copies[0].args, "go.mod") || !strings.Contains(copies[0].args, "go.sum") {
		t.Errorf("Dockerfile: the build stage should COPY go.mod go.sum (and go mod download) before the sources")
	}
	for _, in := range copies {
		flags, rest := splitFlags(in.args)
		if _, ok := flags["from"]; ok {
			continue
		}
		for _, src := range rest[:len(rest)-1] {
			if _, err := os.Stat(filepath.Join(deployDir(t), "..", src)); err != nil {
				t.Errorf("Dockerfile line %d: COPY %s: not in the build context: %v", in.line, src, err)
			}
		}
	}

	// The final stage: the binary where ENTRYPOINT runs it.
	copied := map[string]instruction{} // destination → COPY
	for _, in := range final.all("COPY") {
		flags, rest := splitFlags(in.args)
		if from := flags["from"]; from != "" && from != build.name {
			t.Errorf("Dockerfile line %d: COPY --from=%s, want --from=%s", in.line, from, build.name)
		}
		copied[rest[len(rest)-1]] = in
		if rest[len(rest)-1] == binaryPath && rest[0] != output {
			t.Errorf("Dockerfile line %d: copies %s to %s, but go build writes %s", in.line, rest[0], binaryPath, output)
		}
	}
	if _, ok := copied[binaryPath]; !ok {
		t.Errorf("Dockerfile: the final stage does not COPY the binary to %s", binaryPath)
	}
	if in, ok := final.last("ENTRYPOINT"); !ok {
		t.Error("Dockerfile: no ENTRYPOINT")
	} else if argv := execForm(t, in); !slices.Equal(argv, []string{binaryPath}) {
		t.Errorf("ENTRYPOINT %q, want [%q]", argv, binaryPath)
	}
	if in, ok := final.last("CMD"); !ok {
		t.Error("Dockerfile: no CMD")
	} else if argv := execForm(t, in); !slices.Equal(argv, []string{"serve", "-config", configPath}) {
		t.Errorf("CMD %q, want serve -config %s", argv, configPath)
	}

	// Not root, by number.
	user, ok := final.last("USER")
	if !ok {
		t.Fatal("Dockerfile: the final stage has no USER: it would run as root")
	}
	uid, gid, _ := strings.Cut(user.args, ":")
	for _, id := range []string{uid, gid} {
		if id == "" {
			continue
		}
		if !regexp.MustCompile(`^[0-9]+$`).MatchString(id) {
			t.Errorf("USER %s: want numeric ids (Kubernetes runAsNonRoot cannot check names)", user.args)
		} else if id == "0" {
			t.Errorf("USER %s: root", user.args)
		}
	}

	// /data: a volume, owned by the user so that a new named volume is
	// writable.
	var volumes []string
	for _, in := range final.all("VOLUME") {
		if strings.HasPrefix(in.args, "[") {
			volumes = append(volumes, execForm(t, in)...)
		} else {
			volumes = append(volumes, strings.Fields(in.args)...)
		}
	}
	if !slices.Contains(volumes, dataDir) {
		t.Errorf("VOLUME %q, want %s", volumes, dataDir)
	}
	if in, ok := copied[dataDir]; !ok {
		t.Errorf("Dockerfile: %s is not created in the final stage owned by the user", dataDir)
	} else if flags, _ := splitFlags(in.args); flags["chown"] != user.args && !strings.HasPrefix(flags["chown"], uid+":") && flags["chown"] != uid {
		t.Errorf("Dockerfile line %d: %s owned by %q, want the USER %s", in.line, dataDir, flags["chown"], user.args)
	}

	var exposed []string
	for _, in := range final.all("EXPOSE") {
		for _, p := range strings.Fields(in.args) {
			exposed = append(exposed, strings.TrimSuffix(p, "/tcp"))
		}
	}
	for _, p := range []string{imapPort, imapsPort, adminPort} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %q: missing %s", exposed, p)
		}
	}

	hc, ok := final.last("HEALTHCHECK")
	if !ok {
		t.Fatal("Dockerfile: no HEALTHCHECK")
	}
	_, rest, ok := strings.Cut(" "+hc.args, " CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %s: want CMD [...]", hc.args)
	}
	argv := execForm(t, instruction{hc.line, "HEALTHCHECK CMD", rest})
	if len(argv) < 2 || argv[0] != binaryPath || argv[1] != "health" {
		t.Errorf("HEALTHCHECK CMD %q, want %s health", argv, binaryPath)
	}
}

// ---- docker-compose.yml ---------------------------------------------------

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
	Networks map[string]any            `yaml:"networks"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []any             `yaml:"volumes"`
	Ports       []any             `yaml:"ports"`
	Networks    []string          `yaml:"networks"`
}

type mount struct {
	source, target string
	bind, readOnly bool
}

func parseMount(v any) (mount, error) {
	switch v := v.(type) {
	case string:
		parts := strings.Split(v, ":")
		var m mount
		switch len(parts) {
		case 1:
			m.target = parts[0]
		case 2, 3:
			m.source, m.target = parts[0], parts[1]
			if len(parts) == 3 {
				m.readOnly = slices.Contains(strings.Split(parts[2], ","), "ro")
			}
		default:
			return mount{}, fmt.Errorf("volume %q: cannot parse", v)
		}
		m.bind = strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/") || strings.HasPrefix(m.source, "~")
		return m, nil
	case map[string]any:
		m := mount{source: fmt.Sprint(v["source"]), target: fmt.Sprint(v["target"]), bind: v["type"] == "bind"}
		m.readOnly, _ = v["read_only"].(bool)
		return m, nil
	}
	return mount{}, fmt.Errorf("volume %v: cannot parse", v)
}

type port struct{ ip, host, container string }

func parsePort(v any) (port, error) {
	s := fmt.Sprint(v)
	s, _, _ = strings.Cut(s, "/")
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 1:
		return port{container: parts[0]}, nil
	case 2:
		return port{host: parts[0], container: parts[1]}, nil
	case 3:
		return port{ip: parts[0], host: parts[1], container: parts[2]}, nil
	}
	return port{}, fmt.Errorf("port %q: cannot parse (IPv6 addresses need the long syntax)", s)
}

type compose struct {
	composeFile
	mounts map[string][]mount // by service
}

func loadCompose(t *testing.T) *compose {
	t.Helper()
	c := &compose{mounts: map[string][]mount{}}
	readYAML(t, "docker-compose.yml", &c.composeFile)
	for name, svc := range c.Services {
		for _, v := range svc.Volumes {
			m, err := parseMount(v)
			if err != nil {
				t.Fatalf("docker-compose.yml: services.%s: %v", name, err)
			}
			c.mounts[name] = append(c.mounts[name], m)
		}
	}
	return c
}

// mountAt returns the mount of service at target.
func (c *compose) mountAt(t *testing.T, service, target string) mount {
	t.Helper()
	for _, m := range c.mounts[service] {
		if m.target == target {
			return m
		}
	}
	t.Fatalf("docker-compose.yml: services.%s mounts nothing at %s", service, target)
	return mount{}
}

// hostFile resolves a bind mount's source relative to deploy/.
func hostFile(t *testing.T, m mount) string {
	t.Helper()
	if !m.bind {
		t.Fatalf("docker-compose.yml: %s:%s is not a bind mount", m.source, m.target)
	}
	return filepath.Join(deployDir(t), filepath.FromSlash(m.source))
}

func TestCompose(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for _, name := range []string{"imapbridge", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("docker-compose.yml: no service %s", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every named volume used is declared and every declared one used;
	// every file or directory mounted from the repository exists.
	used := map[string]bool{}
	for name, mounts := range c.mounts {
		for _, m := range mounts {
			switch {
			case m.source == "":
				t.Errorf("services.%s: anonymous volume at %s: name it, so it survives docker compose down", name, m.target)
			case !m.bind:
				used[m.source] = true
				if _, ok := c.Volumes[m.source]; !ok {
					t.Errorf("services.%s: volume %s is not declared under volumes:", name, m.source)
				}
			case strings.HasPrefix(m.source, "."):
				if _, err := os.Stat(hostFile(t, m)); err != nil {
					t.Errorf("services.%s: mounts %s: %v", name, m.source, err)
				}
			}
		}
	}
	for v := range c.Volumes {
		if !used[v] {
			t.Errorf("docker-compose.yml: volume %s is declared but not used", v)
		}
	}
	for name, svc := range c.Services {
		for _, n := range svc.Networks {
			if _, ok := c.Networks[n]; !ok {
				t.Errorf("services.%s: network %s is not declared under networks:", name, n)
			}
		}
	}

	// imapbridge: built from the repository root with deploy/Dockerfile.
	bridge := c.Services["imapbridge"]
	if bridge.Build == nil {
		t.Fatal("services.imapbridge: no build:")
	}
	buildCtx := filepath.Join(deployDir(t), filepath.FromSlash(bridge.Build.Context))
	if _, err := os.Stat(filepath.Join(buildCtx, "go.mod")); err != nil {
		t.Errorf("services.imapbridge.build.context %s is not the repository root: %v", bridge.Build.Context, err)
	}
	if got, want := filepath.Join(buildCtx, filepath.FromSlash(bridge.Build.Dockerfile)), filepath.Join(deployDir(t), "Dockerfile"); got != want {
		t.Errorf("services.imapbridge.build.dockerfile is %s, want %s", got, want)
	}
	if bridge.Command != nil && !slices.Equal(bridge.Command, []string{"serve", "-config", configPath}) {
		t.Errorf("services.imapbridge.command %q, want serve -config %s", bridge.Command, configPath)
	}

	// Its config: a file of deploy/, read-only, where CMD looks for it.
	cfg := c.mountAt(t, "imapbridge", configPath)
	cfgFile := hostFile(t, cfg)
	if rel, err := filepath.Rel(deployDir(t), cfgFile); err != nil || strings.HasPrefix(rel, "..") {
		t.Errorf("services.imapbridge: config %s is not in deploy/", cfg.source)
	}
	if fi, err := os.Stat(cfgFile); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("services.imapbridge: config %s is not a file", cfg.source)
	}
	if !cfg.readOnly {
		t.Errorf("services.imapbridge: mount the config read-only (:ro)")
	}
	var conf exampleConf
	readYAML(t, filepath.ToSlash(mustRel(t, deployDir(t), cfgFile)), &conf)
	if conf.DataDir != dataDir {
		t.Errorf("%s: data_dir %q, want %s (the image's VOLUME)", cfg.source, conf.DataDir, dataDir)
	}
	if data := c.mountAt(t, "imapbridge", dataDir); data.bind {
		t.Errorf("services.imapbridge: %s should be a named volume", dataDir)
	}

	// IMAP published; the admin port on loopback at most.
	published := map[string]port{}
	for _, v := range bridge.Ports {
		p, err := parsePort(v)
		if err != nil {
			t.Fatalf("services.imapbridge.ports: %v", err)
		}
		published[p.container] = p
	}
	for _, p := range []string{imapPort, imapsPort} {
		if _, ok := published[p]; !ok {
			t.Errorf("services.imapbridge: port %s is not published", p)
		}
	}
	if p, ok := published[adminPort]; ok {
		if ip := net.ParseIP(p.ip); ip == nil || !ip.IsLoopback() {
			t.Errorf("services.imapbridge: admin port %s published on %q: only on 127.0.0.1, or not at all", adminPort, p.ip)
		}
	}
	// Secrets are interpolated from the environment, never written here.
	for k, v := range bridge.Environment {
		if strings.HasPrefix(k, "IMAPBRIDGE_") && !strings.HasPrefix(v, "${") {
			t.Errorf("services.imapbridge.environment.%s: a literal value; use ${%s}", k, k)
		}
	}

	// prometheus: its config and every rule file it names.
	prom := c.Services["prometheus"]
	promConfig := "/etc/prometheus/prometheus.yml"
	for _, arg := range prom.Command {
		if v, ok := strings.CutPrefix(arg, "--config.file="); ok {
			promConfig = v
		}
	}
	pc := c.mountAt(t, "prometheus", promConfig)
	if got, want := hostFile(t, pc), filepath.Join(deployDir(t), "prometheus", "prometheus.yml"); got != want {
		t.Errorf("services.prometheus mounts %s as its config, want prometheus/prometheus.yml", pc.source)
	}
	var pconf promConfigFile
	readYAML(t, "prometheus/prometheus.yml", &pconf)
	for _, rf := range pconf.RuleFiles {
		target := rf
		if !path.IsAbs(rf) {
			target = path.Join(path.Dir(promConfig), rf)
		}
		m := c.mountAt(t, "prometheus", target)
		if got, want := hostFile(t, m), filepath.Join(deployDir(t), "prometheus", filepath.FromSlash(rf)); got != want {
			t.Errorf("services.prometheus mounts %s at %s, want prometheus/%s", m.source, target, rf)
		}
	}

	// grafana: the provisioning files, and the dashboards where the
	// provider looks for them.
	ds := c.mountAt(t, "grafana", "/etc/grafana/provisioning/datasources/prometheus.yml")
	if got, want := hostFile(t, ds), filepath.Join(deployDir(t), "grafana", "provisioning", "datasources", "prometheus.yml"); got != want {
		t.Errorf("services.grafana mounts %s as the data source", ds.source)
	}
	dp := c.mountAt(t, "grafana", "/etc/grafana/provisioning/dashboards/imapbridge.yml")
	if got, want := hostFile(t, dp), filepath.Join(deployDir(t), "grafana", "provisioning", "dashboards", "imapbridge.yml"); got != want {
		t.Errorf("services.grafana mounts %s as the dashboard provider", dp.source)
	}
	var providers struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/imapbridge.yml", &providers)
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" {
		t.Fatalf("grafana/provisioning/dashboards/imapbridge.yml: want one provider of type file")
	}
	dashDir := providers.Providers[0].Options.Path
	dm := c.mountAt(t, "grafana", dashDir)
	if _, err := os.Stat(filepath.Join(hostFile(t, dm), "imapbridge.json")); err != nil {
		t.Errorf("services.grafana mounts %s at %s, which has no imapbridge.json: %v", dm.source, dashDir, err)
	}
	if home := c.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		if rel, ok := strings.CutPrefix(home, dashDir+"/"); !ok {
			t.Errorf("grafana home dashboard %s is not under %s", home, dashDir)
		} else if _, err := os.Stat(filepath.Join(hostFile(t, dm), filepath.FromSlash(rel))); err != nil {
			t.Errorf("grafana home dashboard %s: %v", home, err)
		}
	}
}

func mustRel(t *testing.T, base, target string) string {
	t.Helper()
	rel, err := filepath.Rel(base, target)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// ---- imapbridge.example.yaml ----------------------------------------------

type exampleConf struct {
	DataDir string `yaml:"data_dir"`
	IMAP    struct {
		Listen    string `yaml:"listen"`
		TLSListen string `yaml:"tls_listen"`
		TLS       struct {
			CertFile string `yaml:"cert_file"`
			KeyFile  string `yaml:"key_file"`
		} `yaml:"tls"`
	} `yaml:"imap"`
	Admin struct {
		Listen string `yaml:"listen"`
	} `yaml:"admin"`
	Secrets struct {
		KeyFile string `yaml:"key_file"`
	} `yaml:"secrets"`
	Users []struct {
		Name               string `yaml:"name"`
		PasswordHash       string `yaml:"password_hash"`
		PasswordHashFile   string `yaml:"password_hash_file"`
		SourcePasswordFile string `yaml:"source_password_file"`
	} `yaml:"users"`
}

func TestExampleConfig(t *testing.T) {
	t.Parallel()
	var c exampleConf
	readYAML(t, exampleConfig, &c)
	if c.DataDir != dataDir {
		t.Errorf("data_dir %q, want %s", c.DataDir, dataDir)
	}
	// In a container the admin listener must take connections from other
	// containers; the HEALTHCHECK's 127.0.0.1:9154 reaches it too.
	if host, p, err := net.SplitHostPort(c.Admin.Listen); err != nil || p != adminPort || !(host == "" || net.ParseIP(host).IsUnspecified()) {
		t.Errorf("admin.listen %q, want 0.0.0.0:%s", c.Admin.Listen, adminPort)
	}
	if _, p, err := net.SplitHostPort(c.IMAP.Listen); err != nil || p != imapPort {
		t.Errorf("imap.listen %q, want port %s", c.IMAP.Listen, imapPort)
	}
	if c.IMAP.TLSListen != "" {
		if _, p, err := net.SplitHostPort(c.IMAP.TLSListen); err != nil || p != imapsPort {
			t.Errorf("imap.tls_listen %q, want port %s", c.IMAP.TLSListen, imapsPort)
		}
	}
	// imapbridge check must accept the file as it is: it names no file
	// that does not exist.
	files := map[string]string{
		"imap.tls.cert_file": c.IMAP.TLS.CertFile,
		"imap.tls.key_file":  c.IMAP.TLS.KeyFile,
		"secrets.key_file":   c.Secrets.KeyFile,
	}
	for i, u := range c.Users {
		files[fmt.Sprintf("users[%d].password_hash_file", i)] = u.PasswordHashFile
		files[fmt.Sprintf("users[%d].source_password_file", i)] = u.SourcePasswordFile
	}
	for k, v := range files {
		if v != "" {
			t.Errorf("%s: %q: leave it empty in the example (check would need the file)", k, v)
		}
	}
	if len(c.Users) == 0 {
		t.Fatal("no users")
	}
	for _, u := range c.Users {
		if err := bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(examplePassword)); err != nil {
			t.Errorf("user %s: password_hash is not the bcrypt hash of %q its comment names: %v", u.Name, examplePassword, err)
		}
	}

	// Every key a reader needs to know of is in the file.
	var root yaml.Node
	if err := yaml.Unmarshal(readFile(t, exampleConfig), &root); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	collectKeys(&root, "", keys)
	for _, k := range []string{
		"log.level", "log.format",
		"imap.listen", "imap.tls_listen", "imap.tls.cert_file", "imap.tls.key_file", "imap.allow_insecure_auth",
		"imap.max_connections", "imap.max_connections_per_address", "imap.max_connections_per_user", "imap.append_limit",
		"imap.login_timeout", "imap.idle_timeout",
		"admin.listen", "admin.token_file", "secrets.key_file", "login.fold_case", "readiness.quiet_period",
		"sources.mode", "users.overrides",
		"sources.name", "sources.type", "sources.path", "sources.lock", "sources.poll_interval",
		"sources.idle_poll_interval", "sources.delete_policy", "sources.address", "sources.tls",
		"sources.tls_skip_verify", "sources.auth", "sources.timeout",
		"users.name", "users.password_hash", "users.sources",
	} {
		if !keys[k] {
			t.Errorf("%s: key %s is missing", exampleConfig, k)
		}
	}
}

// collectKeys records every mapping key path in a YAML tree (list items
// share the list's path).
func collectKeys(n *yaml.Node, prefix string, keys map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			collectKeys(c, prefix, keys)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if prefix != "" {
				k = prefix + "." + k
			}
			keys[k] = true
			collectKeys(n.Content[i+1], k, keys)
		}
	}
}

// ---- Prometheus -----------------------------------------------------------

type promConfigFile struct {
	Global struct {
		ScrapeInterval string `yaml:"scrape_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	var c promConfigFile
	readYAML(t, "prometheus/prometheus.yml", &c)
	compose := loadCompose(t)

	found := false
	for _, sc := range c.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, p, err := net.SplitHostPort(target)
				if err != nil || host != "imapbridge" {
					continue
				}
				found = true
				if p != adminPort {
					t.Errorf("job %s scrapes %s, want port %s (admin.listen)", sc.JobName, target, adminPort)
				}
				if _, ok := compose.Services[host]; !ok {
					t.Errorf("job %s scrapes %s, not a compose service", sc.JobName, target)
				}
				if sc.JobName != "imapbridge" {
					t.Errorf("job %s scrapes imapbridge: the alert rules select job=\"imapbridge\"", sc.JobName)
				}
				if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
					t.Errorf("job %s: metrics_path %s, want /metrics", sc.JobName, sc.MetricsPath)
				}
			}
		}
	}
	if !found {
		t.Errorf("prometheus.yml scrapes no imapbridge:%s", adminPort)
	}
	if len(c.RuleFiles) == 0 {
		t.Error("prometheus.yml: no rule_files")
	}
	for _, rf := range c.RuleFiles {
		// promtool and Prometheus resolve them relative to the config file.
		if _, err := os.Stat(filepath.Join(deployDir(t), "prometheus", filepath.FromSlash(rf))); err != nil {
			t.Errorf("rule_files: %s: %v", rf, err)
		}
	}

	// Grafana's $__rate_interval is right only if it knows the scrape
	// interval.
	var ds grafanaDatasources
	readYAML(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	for _, d := range ds.Datasources {
		if d.JSONData.TimeInterval != c.Global.ScrapeInterval {
			t.Errorf("grafana data source %s: timeInterval %q, want the scrape_interval %q", d.Name, d.JSONData.TimeInterval, c.Global.ScrapeInterval)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	var rules ruleFile
	readYAML(t, "prometheus/alerts.yml", &rules)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			} else {
				alerts[name] = true
				if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
					t.Errorf("%s: severity %q, want critical or warning", name, sev)
				}
				for _, a := range []string{"summary", "description"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						t.Errorf("%s: no %s annotation", name, a)
					}
				}
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", name, err)
				}
			}
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("%s: expr names no metric", name)
			}
			for _, m := range names {
				if _, err := checkMetric(m); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		}
	}
	for _, name := range requiredAlerts {
		if !alerts[name] {
			t.Errorf("alerts.yml: no alert %s", name)
		}
	}

	// Every alert is tested firing and not firing.
	var tests ruleTestFile
	readYAML(t, "prometheus/alerts_test.yml", &tests)
	if !slices.Contains(tests.RuleFiles, "alerts.yml") {
		t.Errorf("alerts_test.yml: rule_files %q does not name alerts.yml", tests.RuleFiles)
	}
	firing, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if !alerts[at.Alertname] {
				t.Errorf("alerts_test.yml: tests %s, which alerts.yml does not define", at.Alertname)
			}
			if len(at.ExpAlerts) > 0 {
				firing[at.Alertname]++
			} else {
				quiet[at.Alertname]++
			}
		}
	}
	for name := range alerts {
		if firing[name] == 0 {
			t.Errorf("alerts_test.yml: no case where %s fires", name)
		}
		if quiet[name] == 0 {
			t.Errorf("alerts_test.yml: no case where %s must not fire", name)
		}
	}
}

// ---- Grafana --------------------------------------------------------------

type grafanaDatasources struct {
	Datasources []struct {
		Name      string `yaml:"name"`
		UID       string `yaml:"uid"`
		Type      string `yaml:"type"`
		URL       string `yaml:"url"`
		IsDefault bool   `yaml:"isDefault"`
		JSONData  struct {
			TimeInterval string `yaml:"timeInterval"`
		} `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *dsRef          `json:"datasource"`
			Current    struct {
				Value any `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int     `json:"id"`
	Type       string  `json:"type"`
	Title      string  `json:"title"`
	Datasource *dsRef  `json:"datasource"`
	Panels     []panel `json:"panels"` // a collapsed row's
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource *dsRef `json:"datasource"`
	} `json:"targets"`
}

// flatten returns every panel, those inside collapsed rows included.
func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

// variableQuery returns a template variable's query, a string or (Grafana
// 10 and later) {"query": "..."}.
func variableQuery(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var q struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(raw, &q)
	return q.Query
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	var d dashboard
	if err := json.Unmarshal(readFile(t, "grafana/dashboards/imapbridge.json"), &d); err != nil {
		t.Fatalf("imapbridge.json: %v", err)
	}
	if d.UID == "" || d.Title != "imapbridge" {
		t.Errorf("uid %q, title %q: want a uid and the title imapbridge", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want 36 or later (data source references by uid)", d.SchemaVersion)
	}

	// The data source is a variable; the source variable lists sources.
	const dsVar = "${datasource}"
	var ds grafanaDatasources
	readYAML(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || !ds.Datasources[0].IsDefault {
		t.Fatalf("grafana/provisioning/datasources/prometheus.yml: want one default data source of type prometheus")
	}
	provisioned := ds.Datasources[0]
	if u, err := urlHostPort(provisioned.URL); err != nil || u != "prometheus:9090" {
		t.Errorf("data source url %s: want http://prometheus:9090 (the compose service)", provisioned.URL)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		q := variableQuery(v.Query)
		switch {
		case v.Name == "datasource":
			if v.Type != "datasource" || q != provisioned.Type {
				t.Errorf("variable datasource: type %s, query %s: want type datasource, query %s", v.Type, q, provisioned.Type)
			}
			if cur, ok := v.Current.Value.(string); ok && cur != "" && cur != provisioned.UID && cur != provisioned.Name {
				t.Errorf("variable datasource: current %q is not the provisioned data source", cur)
			}
		case v.Type == "query":
			if v.Datasource == nil || v.Datasource.UID != dsVar {
				t.Errorf("variable %s: data source %+v, want uid %s", v.Name, v.Datasource, dsVar)
			}
			for _, m := range metricNames(q) {
				if _, err := checkMetric(m); err != nil {
					t.Errorf("variable %s: %v", v.Name, err)
				}
			}
			if v.Name == "source" && q != "label_values(imapbridge_source_polls_total, source)" {
				t.Errorf("variable source: query %q", q)
			}
		}
	}
	for _, name := range []string{"datasource", "source"} {
		if !vars[name] {
			t.Errorf("no template variable %s", name)
		}
	}

	ids := map[int]string{}
	shown := map[string]bool{}
	var boxes []panel
	for _, p := range flatten(d.Panels) {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for _, b := range boxes {
			if g.X < b.GridPos.X+b.GridPos.W && b.GridPos.X < g.X+g.W && g.Y < b.GridPos.Y+b.GridPos.H && b.GridPos.Y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", p.Title, b.Title)
			}
		}
		boxes = append(boxes, p)
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != dsVar {
			t.Errorf("panel %q: data source %+v, want uid %s", p.Title, p.Datasource, dsVar)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if refs[tg.RefID] {
				t.Errorf("panel %q: refId %s twice", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != dsVar {
				t.Errorf("panel %q %s: data source %+v, want uid %s", p.Title, tg.RefID, tg.Datasource, dsVar)
			}
			names := metricNames(tg.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q %s: expr %q names no metric", p.Title, tg.RefID, tg.Expr)
			}
			for _, m := range names {
				family, err := checkMetric(m)
				if err != nil {
					t.Errorf("panel %q %s: %v", p.Title, tg.RefID, err)
				}
				shown[family] = true
			}
		}
	}
	for m := range bridgeMetrics {
		if !shown[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

func urlHostPort(u string) (string, error) {
	rest, ok := strings.CutPrefix(u, "http://")
	if !ok {
		return "", errors.New("not http://")
	}
	host, _, _ := strings.Cut(rest, "/")
	return host, nil
}

// ---- systemd --------------------------------------------------------------

// parseUnit returns a unit file's settings as section → key → values.
func parseUnit(data string) (map[string]map[string][]string, error) {
	out := map[string]map[string][]string{}
	section := ""
	for i, line := range strings.Split(data, "\n") {
		s := strings.TrimSpace(line)
		switch {
		case s == "" || strings.HasPrefix(s, "#") || strings.HasPrefix(s, ";"):
		case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
			section = s[1 : len(s)-1]
			if out[section] == nil {
				out[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(s, "=")
			if !ok || section == "" || strings.HasSuffix(s, `\`) {
				return nil, fmt.Errorf("line %d: cannot parse %q", i+1, s)
			}
			out[section][strings.TrimSpace(k)] = append(out[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return out, nil
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	data := string(readFile(t, "systemd/imapbridge.service"))
	unit, err := parseUnit(data)
	if err != nil {
		t.Fatalf("imapbridge.service: %v", err)
	}
	svc := unit["Service"]
	want := map[string]string{
		"Type":                    "simple",
		"User":                    "imapbridge",
		"ExecStartPre":            binaryPath + " check -config " + configPath,
		"ExecStart":               binaryPath + " serve -config " + configPath,
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"Restart":                 "on-failure",
		"StateDirectory":          "imapbridge",
		"UMask":                   "0077",
		"LimitNOFILE":             "65536",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallFilter":        "@system-service",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
	}
	for k, v := range want {
		if got := svc[k]; !slices.Contains(got, v) {
			t.Errorf("[Service] %s=%q, want %q", k, got, v)
		}
	}
	if !strings.Contains(data, "#ReadWritePaths=/var/mail") {
		t.Error("imapbridge.service: the commented ReadWritePaths=/var/mail for mbox spools is gone")
	}
	if got := unit["Install"]["WantedBy"]; !slices.Contains(got, "multi-user.target") {
		t.Errorf("[Install] WantedBy=%q", got)
	}

	// The sysusers.d file creates that user.
	sysusers := string(readFile(t, "systemd/imapbridge.sysusers.conf"))
	if !regexp.MustCompile(`(?m)^u\s+imapbridge\s`).MatchString(sysusers) {
		t.Error("imapbridge.sysusers.conf does not create the user imapbridge")
	}

	// systemd's own check, where systemd is installed. The binary is not:
	// verify a copy that runs /bin/true instead.
	analyze := testtool.Need(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	copyUnit := filepath.Join(dir, "imapbridge.service")
	if err := os.WriteFile(copyUnit, []byte(strings.ReplaceAll(data, binaryPath, "/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", copyUnit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// ---- promtool -------------------------------------------------------------

func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool := testtool.Need(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "config", "prometheus/prometheus.yml"},
		{"check", "rules", "prometheus/alerts.yml"},
		{"test", "rules", "prometheus/alerts_test.yml"},
	} {
		t.Run(strings.Join(args[:2], "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, promtool, args...)
			cmd.Dir = deployDir(t)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}
