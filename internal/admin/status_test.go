package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imapbridge/imapbridge/bridge"
)

var statusNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testStatus(token string) http.Handler {
	login := statusNow.Add(-time.Hour)
	users := []bridge.UserStatus{
		{Name: "alice", Ready: true, Reasons: []string{}, LastLogin: &login, Clients: []bridge.ClientInfo{}, Sources: []bridge.SourceStatus{
			{Name: "legacy", Mode: bridge.ModeServe, DeletePolicy: bridge.DeleteAfterSync, HostMessages: 1, StoredMessages: 4},
		}},
		{Name: "bob<script>", Ready: false, Reasons: []string{"never logged in over IMAP"}, Clients: []bridge.ClientInfo{}, Sources: []bridge.SourceStatus{
			{Name: "legacy", Mode: bridge.ModeShadow, DeletePolicy: bridge.DeleteAfterSync, HostMessages: 3, Pending: 2, WouldDelete: 1},
		}},
	}
	return Handler(Options{Gatherer: prometheus.NewRegistry(), Routes: StatusRoutes(StatusOptions{
		Status: func(context.Context, time.Time) ([]bridge.UserStatus, error) { return users, nil },
		History: func(_ context.Context, user, source string) ([]bridge.HostPoint, error) {
			return []bridge.HostPoint{{At: statusNow.Add(-2 * time.Hour), Messages: 4}, {At: statusNow.Add(-time.Hour), Messages: 1}}, nil
		},
		Token: func() string { return token },
		Now:   func() time.Time { return statusNow },
	})})
}

func TestStatusJSON(t *testing.T) {
	code, body := get(t, testStatus(""), "/status.json")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var rep struct {
		GeneratedAt string `json:"generated_at"`
		Users       []struct {
			Name    string   `json:"name"`
			Ready   bool     `json:"ready"`
			Reasons []string `json:"reasons"`
			Sources []map[string]any
		} `json:"users"`
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.GeneratedAt != "2026-03-01T12:00:00Z" || len(rep.Users) != 2 || !rep.Users[0].Ready || rep.Users[1].Reasons[0] != "never logged in over IMAP" {
		t.Errorf("report %+v", rep)
	}
	for _, k := range []string{"name", "mode", "delete_policy", "last_poll", "last_error", "host_messages", "host_bytes", "stored_messages", "pending", "would_delete", "foreign_deletions", "last_foreign_deletion"} {
		if _, ok := rep.Users[1].Sources[0][k]; !ok {
			t.Errorf("source has no %q", k)
		}
	}
}

func TestStatusHTML(t *testing.T) {
	code, body := get(t, testStatus(""), "/status")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<b>1 / 2</b>users ready`,
		`<b>4</b>messages still at the hosts`,
		`<span class="verdict notready">not ready</span>`,
		`<li>never logged in over IMAP</li>`,
		`bob&lt;script&gt;`,
		`<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="0.0,1.0 160.0,29.5"/>`,
		`drain of legacy: 4 → 1 left since 2026-03-01 10:00 UTC`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("page has a script or an external reference:\n%s", body)
	}
	// Only the after_sync feed in serve mode gets a chart.
	if n := strings.Count(body, "<svg"); n != 1 {
		t.Errorf("%d charts, want 1", n)
	}
}

func TestStatusToken(t *testing.T) {
	const token = "0123456789abcdef0123"
	h := testStatus(token)
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/status", "", 401},
		{"/status.json", "", 401},
		{"/status.json", "Bearer wrong", 401},
		{"/status.json", "Basic " + token, 401},
		{"/status.json", "Bearer " + token, 200},
		{"/status", "Bearer " + token, 200},
		{"/metrics", "", 200},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
	} {
		req := httptest.NewRequest("GET", tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s with %q: %d, want %d", tc.path, tc.auth, rec.Code, tc.want)
		}
		if rec.Code == 401 && !strings.Contains(rec.Body.String(), "Authorization: Bearer") {
			t.Errorf("401 body %q", rec.Body.String())
		}
	}
}
