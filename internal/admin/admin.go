// Package admin owns the admin HTTP listener: /metrics (Prometheus, from
// the Gatherer it is given), /healthz (the process answers), /readyz (ready,
// or 503 with the reason), /debug/pprof/ when asked for, and whatever
// further routes the wiring plugs in (the status page, /status and
// /status.json, is one: Options.Routes).
//
// It may import bridge (a status route reads accounts from it) and the
// Prometheus client. It must not import imapfront, pop3, mboxstore or
// internal/config: what it serves is given in Options by cmd/imapbridge.
package admin

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options say what the admin listener serves.
type Options struct {
	// Gatherer is what /metrics serves (required).
	Gatherer prometheus.Gatherer
	// Registerer, if set, gets promhttp's own families (errors while
	// serving /metrics); usually the registry that is also the Gatherer.
	Registerer prometheus.Registerer
	// Ready is /readyz: nil means ready (200 "ready"), an error is
	// answered 503 "not ready: <error>". Nil Ready is always ready.
	Ready func() error
	// Pprof serves Go's profiler under /debug/pprof/.
	Pprof bool
	// Routes are further pages, served on the same listener and listed
	// on the index page ("/").
	Routes []Route
}

// Route is one further page of the admin listener.
type Route struct {
	// Pattern is an http.ServeMux pattern: "GET /status", "/status.json".
	Pattern string
	// Path is the link on the index page ("/status"); "" lists nothing.
	Path    string
	Handler http.Handler
}

// Handler returns the admin listener's handler.
func Handler(opts Options) http.Handler {
	mux := http.NewServeMux()
	if opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{Registry: opts.Registerer}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	ready := opts.Ready
	if ready == nil {
		ready = func() error { return nil }
	}
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		io.WriteString(w, "ready\n")
	})
	links := []string{"/metrics", "/healthz", "/readyz"}
	for _, r := range opts.Routes {
		mux.Handle(r.Pattern, r.Handler)
		if r.Path != "" {
			links = append(links, r.Path)
		}
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		indexPage.Execute(w, links)
	})
	return mux
}

var indexPage = template.Must(template.New("index").Parse(`<html><head><title>imapbridge</title></head><body><h1>imapbridge</h1><ul>` +
	`{{range .}}<li><a href="{{.}}">{{.}}</a></li>{{end}}</ul></body></html>` + "\n"))

// Server is the admin listener, bound and serving.
type Server struct {
	ln   net.Listener
	http *http.Server
	done chan error
}

// Listen binds addr and starts serving opts on it. Serve's error (nil
// after Shutdown) is told by Wait.
func Listen(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen %s: %w", addr, err)
	}
	s := &Server{
		ln:   ln,
		http: &http.Server{Handler: Handler(opts), ReadHeaderTimeout: 10 * time.Second},
		done: make(chan error, 1),
	}
	go func() {
		err := s.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Wait returns when the server has stopped serving: nil after Shutdown,
// the listener's error otherwise. It may be called once.
func (s *Server) Wait() error { return <-s.done }

// Shutdown stops listening and waits, until ctx ends, for requests in
// flight to finish.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }
