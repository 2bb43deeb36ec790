package pop3

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/imapbridge/imapbridge/bridge"
)

// m365Fake is a faultServer hook that answers AUTH XOAUTH2 and AUTH
// OAUTHBEARER the way Microsoft 365's POP3 does (Outlook.com and Exchange
// Online): an initial response on the AUTH line is refused; the response
// must come in a continuation after "+ ". A good token gets "+OK User
// successfully authenticated."; a bad one, when challenge is set, an
// error challenge ("+ " and base64 JSON, as Gmail sends it) that the
// client must answer before the -ERR, else the -ERR at once. No real
// server can be made to refuse a token in each of these ways on cue.
type m365Fake struct {
	token     string // the token that is accepted
	challenge bool   // refuse with an error challenge first
	wantUser  string
}

const m365Failure = `{"status":"401","schemes":"bearer","scope":"https://outlook.office.com/POP.AccessAsUser.All"}`

func (f m365Fake) hook(c *faultConn, verb, arg string) bool {
	if verb != "AUTH" {
		return false
	}
	mech, ir, _ := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	if mech != "XOAUTH2" && mech != "OAUTHBEARER" {
		return false
	}
	if ir != "" {
		c.send("-ERR Protocol error. Connection is closed. 10")
		return true
	}
	c.send("+ ")
	line, ok := c.readCmd()
	if !ok {
		return true
	}
	raw, _ := base64.StdEncoding.DecodeString(line)
	var want string
	if mech == "XOAUTH2" {
		want = xoauth2Response(f.wantUser, f.token)
	} else {
		want = oauthBearerResponse(f.wantUser, f.token)
	}
	if string(raw) == want {
		c.send("+OK User successfully authenticated.")
		return true
	}
	if f.challenge {
		c.send("+ " + base64.StdEncoding.EncodeToString([]byte(m365Failure)))
		if _, ok := c.readCmd(); !ok {
			return true
		}
	}
	c.send("-ERR Authentication failure: unknown user name or bad password.")
	return true
}

func TestAuthBearerTranscripts(t *testing.T) {
	const user, good, bad = "alice@contoso.example", "ya29.good-token", "ya29.expired-token"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name      string
		mech      string
		token     string
		challenge bool
		wantCmds  []string
		wantErr   string
	}{
		{"xoauth2 two-step accepted", "XOAUTH2", good, false,
			[]string{"AUTH XOAUTH2", b64("user=" + user + "\x01auth=Bearer " + good + "\x01\x01")}, ""},
		{"oauthbearer two-step accepted", "OAUTHBEARER", good, false,
			[]string{"AUTH OAUTHBEARER", b64("n,a=" + user + ",\x01auth=Bearer " + good + "\x01\x01")}, ""},
		{"xoauth2 refused at once", "XOAUTH2", bad, false,
			[]string{"AUTH XOAUTH2", b64("user=" + user + "\x01auth=Bearer " + bad + "\x01\x01")},
			"pop3: auth xoauth2: token refused: server replied -ERR Authentication failure: unknown user name or bad password."},
		{"xoauth2 error challenge answered with an empty line", "XOAUTH2", bad, true,
			[]string{"AUTH XOAUTH2", b64("user=" + user + "\x01auth=Bearer " + bad + "\x01\x01"), ""},
			`pop3: auth xoauth2: token refused (status "401", scope "https://outlook.office.com/POP.AccessAsUser.All"): server replied -ERR Authentication failure: unknown user name or bad password.`},
		{"oauthbearer error challenge answered with ^A", "OAUTHBEARER", bad, true,
			[]string{"AUTH OAUTHBEARER", b64("n,a=" + user + ",\x01auth=Bearer " + bad + "\x01\x01"), "AQ=="},
			`pop3: auth oauthbearer: token refused (status "401", scope "https://outlook.office.com/POP.AccessAsUser.All"): server replied -ERR Authentication failure: unknown user name or bad password.`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := m365Fake{token: good, challenge: tc.challenge, wantUser: user}
			fs := newFaultServer(t, faultConfig{hook: f.hook})
			var trace bytes.Buffer
			c := dial(t, fs.Addr(), Options{Logger: slog.New(slog.NewTextHandler(&trace, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			var err error
			if tc.mech == "XOAUTH2" {
				err = c.AuthXOAUTH2(context.Background(), user, tc.token)
			} else {
				err = c.AuthOAuthBearer(context.Background(), user, tc.token)
			}
			if got := fs.Commands(); strings.Join(got, "|") != strings.Join(tc.wantCmds, "|") {
				t.Fatalf("commands\n%q\nwant\n%q", got, tc.wantCmds)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("auth: %v", err)
			case tc.wantErr != "":
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("auth error\n%v\nwant\n%s", err, tc.wantErr)
				}
				var pe *Error
				if !errors.Is(err, ErrTokenRefused) || !errors.As(err, &pe) || pe.Code != "" {
					t.Fatalf("error %v does not wrap ErrTokenRefused and *Error", err)
				}
				if !errors.Is(classify(err), bridge.ErrSourceAuth) {
					t.Fatalf("classify(%v) is not a source auth error", err)
				}
			}
			for _, secret := range []string{tc.token, b64("user=" + user + "\x01auth=Bearer " + tc.token + "\x01\x01")} {
				if strings.Contains(trace.String(), secret) || (err != nil && strings.Contains(err.Error(), secret)) {
					t.Fatalf("the token is in the trace or the error:\n%s", trace.String())
				}
			}
			mustNoop(t, c) // the session stays in step
		})
	}
}

func TestAuthBearerRefusesControlCharacters(t *testing.T) {
	fs := newFaultServer(t, faultConfig{hook: m365Fake{token: "t"}.hook})
	c := dial(t, fs.Addr(), Options{})
	err := c.AuthXOAUTH2(context.Background(), "alice", "to\x01ken")
	if err == nil || err.Error() != "pop3: auth xoauth2: user or token contains NUL, CR, LF or ^A" {
		t.Fatalf("AuthXOAUTH2 = %v", err)
	}
	if len(fs.Commands()) != 0 {
		t.Fatalf("sent %q", fs.Commands())
	}
}

func TestParseOAuth2Challenge(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		in      string
		want    OAuth2Failure
		wantErr string
	}{
		{b64(m365Failure), OAuth2Failure{Status: "401", Schemes: "bearer", Scope: "https://outlook.office.com/POP.AccessAsUser.All"}, ""},
		{b64(`{"status":"invalid_token","extra":1}`), OAuth2Failure{Status: "invalid_token"}, ""},
		{"%%%", OAuth2Failure{}, `malformed reply: error challenge is not base64: "%%%"`},
		{b64(`[1]`), OAuth2Failure{}, `malformed reply: error challenge is not a JSON object: "[1]"`},
		{b64(`{"status":401}`), OAuth2Failure{}, `malformed reply: error challenge is not a JSON object: "{\"status\":401}"`},
		{strings.Repeat("A", 8000), OAuth2Failure{}, "malformed reply: error challenge longer than 4096 bytes"},
	}
	for _, tc := range tests {
		got, err := parseOAuth2Challenge(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("parseOAuth2Challenge(%.20q) error %v, want %s", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseOAuth2Challenge(%.20q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseOAuth2Challenge(f *testing.F) {
	for _, s := range seeds(f, "oauth2challenge") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseOAuth2Challenge(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || got != (OAuth2Failure{}) {
				t.Fatalf("error %v with %+v", err, got)
			}
			return
		}
		// What parsed is what a client would show: it came from the input.
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(in))
		for _, v := range []string{got.Status, got.Scope, got.Schemes} {
			if v != "" && !bytes.Contains(raw, []byte(v[:1])) {
				t.Fatalf("%q not from %q", v, raw)
			}
		}
	})
}
