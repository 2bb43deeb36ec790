package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

func TestPprofOnlyWhenConfigured(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := Handler(Options{Gatherer: prometheus.NewRegistry(), Pprof: on})
		want := 404
		if on {
			want = 200
		}
		if code, _ := get(t, h, "/debug/pprof/"); code != want {
			t.Errorf("pprof %v: /debug/pprof/ = %d, want %d", on, code, want)
		}
	}
}

// TestHandler: every page's status and exact body, with a route plugged
// in the way the status page will be.
func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "imapbridge_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	var readyErr error
	status := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "status page\n") })
	h := Handler(Options{
		Gatherer:   reg,
		Registerer: reg,
		Ready:      func() error { return readyErr },
		Routes: []Route{
			{Pattern: "GET /status", Path: "/status", Handler: status},
			{Pattern: "GET /status.json", Handler: status},
		},
	})
	for _, tc := range []struct {
		path string
		code int
		body string // exact, or a line the body holds when it starts with "~"
	}{
		{"/healthz", 200, "ok\n"},
		{"/readyz", 200, "ready\n"},
		{"/metrics", 200, "~imapbridge_test_total 3"},
		{"/status", 200, "status page\n"},
		{"/status.json", 200, "status page\n"},
		{"/", 200, `<html><head><title>imapbridge</title></head><body><h1>imapbridge</h1><ul><li><a href="/metrics">/metrics</a></li><li><a href="/healthz">/healthz</a></li><li><a href="/readyz">/readyz</a></li><li><a href="/status">/status</a></li></ul></body></html>` + "\n"},
		{"/nope", 404, "404 page not found\n"},
	} {
		code, body := get(t, h, tc.path)
		ok := body == tc.body
		if line, found := strings.CutPrefix(tc.body, "~"); found {
			ok = strings.Contains("\n"+body, "\n"+line+"\n")
		}
		if code != tc.code || !ok {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
		}
	}
	readyErr = errors.New("store: disk full")
	if code, body := get(t, h, "/readyz"); code != 503 || body != "not ready: store: disk full\n" {
		t.Errorf("GET /readyz when not ready = %d %q", code, body)
	}
}

// TestServer: Listen serves on a real socket; Shutdown ends Wait with nil;
// a taken address is an error naming it.
func TestServer(t *testing.T) {
	s, err := Listen("127.0.0.1:0", Options{Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz = %d %q", resp.StatusCode, body)
	}
	_, err = Listen(s.Addr().String(), Options{Gatherer: prometheus.NewRegistry()})
	if err == nil || !strings.HasPrefix(err.Error(), "admin listen "+s.Addr().String()+": ") {
		t.Errorf("second Listen on %s: %v", s.Addr(), err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err != nil {
		t.Errorf("Wait after Shutdown: %v", err)
	}
}
