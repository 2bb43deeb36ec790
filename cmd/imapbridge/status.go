package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
	"github.com/imapbridge/imapbridge/internal/admin"
	"github.com/imapbridge/imapbridge/internal/config"
)

// statusRoutes are /status and /status.json on the admin listener, with
// the token and quiet period of the running config.
func (a *app) statusRoutes() []admin.Route {
	return admin.StatusRoutes(admin.StatusOptions{
		Status: func(ctx context.Context, now time.Time) ([]bridge.UserStatus, error) {
			return a.bridge.Status(ctx, now, a.live.quietPeriod())
		},
		History: a.bridge.HostHistory,
		Token:   a.live.token,
		Logger:  a.log,
	})
}

// runStatus is "imapbridge status": the readiness of every user, read
// from the running server's admin listener.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file of the running server (YAML)")
	asJSON := fs.Bool("json", false, "print /status.json as the server sends it")
	user := fs.String("user", "", "show only this user")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the server")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "imapbridge status: -config FILE is required")
		return 2
	}
	cfg, _, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge status: %v\n", err)
		return 1
	}
	if cfg.Admin.Listen == "" {
		fmt.Fprintln(stderr, "imapbridge status: admin.listen is empty in the config, so the server has no status to read")
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	url := "http://" + dialAddress(cfg.Admin.Listen) + "/status.json"
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge status: %v\n", err)
		return 1
	}
	if cfg.Admin.Token != "" {
		req.Header.Set("Authorization", "Bearer "+string(cfg.Admin.Token))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge status: is the server running? %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		fmt.Fprintf(stderr, "imapbridge status: read %s: %v\n", url, err)
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "imapbridge status: %s answered %s: %s\n", url, resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	var rep admin.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		fmt.Fprintf(stderr, "imapbridge status: %s: %v\n", url, err)
		return 1
	}
	if *user != "" {
		var only []bridge.UserStatus
		for _, u := range rep.Users {
			if u.Name == *user {
				only = append(only, u)
			}
		}
		if len(only) == 0 {
			fmt.Fprintf(stderr, "imapbridge status: no user %q is polled\n", *user)
			return 1
		}
		rep.Users = only
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return 0
	}
	writeStatusTable(stdout, rep)
	return 0
}

// writeStatusTable prints the report for a terminal: totals, then a row
// per user and source, then the reasons of users not ready.
func writeStatusTable(w io.Writer, rep admin.Report) {
	ready, atHosts := 0, 0
	for _, u := range rep.Users {
		if u.Ready {
			ready++
		}
		for _, s := range u.Sources {
			atHosts += s.HostMessages
		}
	}
	fmt.Fprintf(w, "generated %s: %d of %d users ready, %d messages still at the hosts\n\n", rep.GeneratedAt.UTC().Format(time.RFC3339), ready, len(rep.Users), atHosts)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tREADY\tSOURCE\tMODE\tPOLICY\tAT HOST\tSTORED\tPENDING\tWOULD DELETE\tFOREIGN\tLAST POLL")
	for _, u := range rep.Users {
		verdict := "no"
		if u.Ready {
			verdict = "yes"
		}
		for _, s := range u.Sources {
			last := "never"
			if s.LastPoll != nil {
				last = s.LastPoll.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", u.Name, verdict, s.Name, s.Mode, s.DeletePolicy, s.HostMessages, s.StoredMessages, s.Pending, s.WouldDelete, s.ForeignDeletions, last)
		}
	}
	tw.Flush()
	for _, u := range rep.Users {
		if u.Ready {
			continue
		}
		fmt.Fprintf(w, "\n%s is not ready:\n", u.Name)
		for _, r := range u.Reasons {
			fmt.Fprintf(w, "  - %s\n", r)
		}
	}
}

// dialAddress turns a listen address into one to connect to: an
// unspecified host (":9154", "0.0.0.0:9154", "[::]:9154") is this machine.
func dialAddress(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
