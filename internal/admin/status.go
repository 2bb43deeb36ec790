package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// This file is the status page of the retirement path: GET /status.json
// (the readiness of every user, as bridge.UserStatus) and GET /status (the
// same, server-rendered for a person, with a drain chart per after_sync
// feed). Both need "Authorization: Bearer <token>" when a token is set.

// Report is what /status.json serves.
type Report struct {
	GeneratedAt time.Time           `json:"generated_at"`
	Users       []bridge.UserStatus `json:"users"`
}

// StatusOptions say where the status pages read from.
type StatusOptions struct {
	// Status returns the readiness of every user (required).
	Status func(ctx context.Context, now time.Time) ([]bridge.UserStatus, error)
	// History returns a feed's drain chart (messages at the host over
	// time); nil draws no chart.
	History func(ctx context.Context, user, source string) ([]bridge.HostPoint, error)
	// Token returns the bearer token the pages require; "" (or a nil
	// Token) lets anyone who reaches the listener read them. A function,
	// so a config reload can change it.
	Token func() string
	// Now is the clock (nil: time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// StatusRoutes returns the routes of /status and /status.json.
func StatusRoutes(o StatusOptions) []Route {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Token == nil {
		o.Token = func() string { return "" }
	}
	return []Route{
		{Pattern: "GET /status", Path: "/status", Handler: o.guard(http.HandlerFunc(o.serveHTML))},
		{Pattern: "GET /status.json", Path: "/status.json", Handler: o.guard(http.HandlerFunc(o.serveJSON))},
	}
}

// guard answers 401 unless the request carries the token (compared in
// constant time).
func (o StatusOptions) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if want := o.Token(); want != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="imapbridge admin"`)
				http.Error(w, "401 unauthorized: send Authorization: Bearer <the token of admin.token_file>", http.StatusUnauthorized)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func (o StatusOptions) report(r *http.Request) (Report, bool, func(http.ResponseWriter)) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	now := o.Now().UTC().Truncate(time.Second)
	users, err := o.Status(ctx, now)
	if err != nil {
		o.Logger.Error("admin: status", "err", err)
		return Report{}, false, func(w http.ResponseWriter) {
			http.Error(w, "status unavailable: the state store could not be read (see the log)", http.StatusServiceUnavailable)
		}
	}
	if users == nil {
		users = []bridge.UserStatus{}
	}
	return Report{GeneratedAt: now, Users: users}, true, nil
}

func (o StatusOptions) serveJSON(w http.ResponseWriter, r *http.Request) {
	rep, ok, fail := o.report(r)
	if !ok {
		fail(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rep)
}

// page is what the HTML template is given.
type page struct {
	Report
	Ready, Total int
	AtHosts      int
	Pending      int
	Rows         []row
}

type row struct {
	bridge.UserStatus
	Charts []chart
}

type chart struct {
	Source string
	Points int
	First  int
	Last   int
	Path   string // SVG polyline points
	Since  time.Time
}

const chartW, chartH = 160, 40

func (o StatusOptions) serveHTML(w http.ResponseWriter, r *http.Request) {
	rep, ok, fail := o.report(r)
	if !ok {
		fail(w)
		return
	}
	p := page{Report: rep, Total: len(rep.Users)}
	for _, u := range rep.Users {
		if u.Ready {
			p.Ready++
		}
		rw := row{UserStatus: u}
		for _, s := range u.Sources {
			p.AtHosts += s.HostMessages
			p.Pending += s.Pending
			if s.DeletePolicy != bridge.DeleteAfterSync || s.Mode != bridge.ModeServe || o.History == nil {
				continue
			}
			pts, err := o.History(r.Context(), u.Name, s.Name)
			if err != nil {
				o.Logger.Warn("admin: drain chart", "user", u.Name, "source", s.Name, "err", err)
				continue
			}
			if c, ok := drawChart(s.Name, pts); ok {
				rw.Charts = append(rw.Charts, c)
			}
		}
		p.Rows = append(p.Rows, rw)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := statusPage.Execute(w, p); err != nil {
		o.Logger.Warn("admin: render status", "err", err)
	}
}

// drawChart draws the messages at the host over time as an SVG polyline,
// time on x, count on y (0 at the bottom).
func drawChart(source string, pts []bridge.HostPoint) (chart, bool) {
	if len(pts) == 0 {
		return chart{}, false
	}
	c := chart{Source: source, Points: len(pts), First: pts[0].Messages, Last: pts[len(pts)-1].Messages, Since: pts[0].At}
	maxN := 1
	for _, p := range pts {
		maxN = max(maxN, p.Messages)
	}
	t0, t1 := pts[0].At, pts[len(pts)-1].At
	span := t1.Sub(t0).Seconds()
	var b strings.Builder
	for i, p := range pts {
		x := 0.0
		if span > 0 {
			x = p.At.Sub(t0).Seconds() / span * chartW
		} else if len(pts) > 1 {
			x = float64(i) / float64(len(pts)-1) * chartW
		}
		y := chartH - float64(p.Messages)/float64(maxN)*(chartH-2) - 1
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", x, y)
	}
	if len(pts) == 1 {
		fmt.Fprintf(&b, " %d,%s", chartW, strings.Split(b.String(), ",")[1])
	}
	c.Path = b.String()
	return c, true
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"when": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"w":    func() int { return chartW },
	"h":    func() int { return chartH },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>imapbridge: retirement status</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:1em;max-width:72em;color:#111;background:#fff}
h1{font-size:1.3em;margin:0 0 .2em}
.gen{color:#555;font-size:.85em;margin:0 0 1em}
.totals{display:flex;flex-wrap:wrap;gap:.6em;margin:0 0 1em;padding:0;list-style:none}
.totals li{border:1px solid #ccc;border-radius:6px;padding:.4em .8em}
.totals b{font-size:1.3em;display:block}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.45em .5em;border-bottom:1px solid #ddd}
th{background:#f4f4f4}
.verdict{font-weight:bold;white-space:nowrap}
.ready{color:#116611}.notready{color:#a31515}
ul.reasons{margin:0;padding-left:1.1em}
.src{font-size:.85em;color:#333;margin:.15em 0}
svg{display:block;margin:.2em 0;background:#fafafa;border:1px solid #e2e2e2}
@media (max-width:40em){
 table,thead,tbody,tr,th,td{display:block}
 thead{display:none}
 tr{border:1px solid #ccc;border-radius:6px;margin:0 0 .8em;padding:.3em}
 td{border:none;padding:.25em .4em}
 td::before{content:attr(data-label);display:block;font-size:.75em;color:#666;text-transform:uppercase}
}
</style></head><body>
<h1>Retirement status</h1>
<p class="gen">Generated <time datetime="{{.GeneratedAt.Format "2006-01-02T15:04:05Z07:00"}}">{{date .GeneratedAt}}</time></p>
<ul class="totals">
<li id="total-ready"><b>{{.Ready}} / {{.Total}}</b>users ready</li>
<li id="total-hosts"><b>{{.AtHosts}}</b>messages still at the hosts</li>
<li id="total-pending"><b>{{.Pending}}</b>not yet stored</li>
</ul>
{{if not .Rows}}<p>No user has a source polled yet.</p>{{else}}
<table>
<thead><tr><th>User</th><th>Verdict</th><th>Sources</th><th>Last IMAP login</th></tr></thead>
<tbody>
{{range .Rows}}<tr id="user-{{.Name}}" data-user="{{.Name}}" data-ready="{{.Ready}}">
<td data-label="User">{{.Name}}</td>
<td data-label="Verdict">{{if .Ready}}<span class="verdict ready">ready</span>{{else}}<span class="verdict notready">not ready</span>
<ul class="reasons">{{range .Reasons}}<li>{{.}}</li>{{end}}</ul>{{end}}</td>
<td data-label="Sources">{{range .Sources}}<div class="src"><b>{{.Name}}</b> · {{.Mode}} · {{.DeletePolicy}} · at host {{.HostMessages}} · stored {{.StoredMessages}} · pending {{.Pending}}{{if .WouldDelete}} · would delete {{.WouldDelete}}{{end}}{{if .ForeignDeletions}} · taken by another client {{.ForeignDeletions}}{{end}} · polled {{when .LastPoll}}{{if .LastError}} · last error: {{.LastError}}{{end}}</div>{{end}}
{{range .Charts}}<figure style="margin:0"><svg role="img" aria-label="messages left at {{.Source}}: {{.First}} to {{.Last}}" width="{{w}}" height="{{h}}" viewBox="0 0 {{w}} {{h}}"><polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="{{.Path}}"/></svg>
<figcaption class="src">drain of {{.Source}}: {{.First}} → {{.Last}} left since {{date .Since}}</figcaption></figure>{{end}}</td>
<td data-label="Last IMAP login">{{when .LastLogin}}{{range .Clients}}<div class="src">{{.Name}} {{.Version}}</div>{{end}}</td>
</tr>
{{end}}</tbody></table>{{end}}
</body></html>
`))
