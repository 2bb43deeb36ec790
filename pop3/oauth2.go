package pop3

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// OAuth2Failure is what a server says, in the base64 JSON of a SASL
// challenge, when it refuses a bearer token (RFC 7628 section 3.2.2, and
// Google's and Microsoft's XOAUTH2 alike): {"status":"401",
// "schemes":"bearer","scope":"..."}. It never holds the token.
type OAuth2Failure struct {
	Status  string `json:"status"`
	Schemes string `json:"schemes"`
	Scope   string `json:"scope"`
}

// ErrTokenRefused is wrapped by the error of AuthXOAUTH2 and
// AuthOAuthBearer when the server refused the token (a -ERR after the
// token, with or without an error challenge first).
var ErrTokenRefused = errors.New("token refused")

// TokenRefusedError is the error of a refused bearer token: the server's
// error challenge, if it sent one, and its final -ERR. It wraps both
// ErrTokenRefused and the *Error.
type TokenRefusedError struct {
	Mechanism string
	// Failure is the parsed error challenge; nil when the server answered
	// -ERR at once.
	Failure *OAuth2Failure
	Err     *Error
}

func (e *TokenRefusedError) Error() string {
	var b strings.Builder
	b.WriteString(ErrTokenRefused.Error())
	if f := e.Failure; f != nil {
		fmt.Fprintf(&b, " (status %q", f.Status)
		if f.Scope != "" {
			fmt.Fprintf(&b, ", scope %q", f.Scope)
		}
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap gives ErrTokenRefused and the server's *Error.
func (e *TokenRefusedError) Unwrap() []error { return []error{ErrTokenRefused, e.Err} }

// maxOAuth2Challenge bounds the decoded error challenge.
const maxOAuth2Challenge = 4 << 10

// parseOAuth2Challenge decodes the text of a "+ " challenge sent after a
// bearer token: base64 of a JSON object. Unknown members are ignored;
// anything that is not base64 of a JSON object is malformed.
func parseOAuth2Challenge(text string) (OAuth2Failure, error) {
	var f OAuth2Failure
	text = strings.TrimSpace(text)
	if len(text) > base64.StdEncoding.EncodedLen(maxOAuth2Challenge) {
		return f, fmt.Errorf("%w: error challenge longer than %d bytes", ErrMalformed, maxOAuth2Challenge)
	}
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return f, fmt.Errorf("%w: error challenge is not base64: %s", ErrMalformed, quote(text))
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return OAuth2Failure{}, fmt.Errorf("%w: error challenge is not a JSON object: %s", ErrMalformed, quote(string(raw)))
	}
	return f, nil
}

// xoauth2Response is the XOAUTH2 initial response (Google's and
// Microsoft's definition), before base64.
func xoauth2Response(user, token string) string {
	return "user=" + user + "\x01auth=Bearer " + token + "\x01\x01"
}

// oauthBearerResponse is the OAUTHBEARER initial client response (RFC
// 7628 section 3.1): the GS2 header with the authorization identity, then
// the auth key-value pair.
func oauthBearerResponse(user, token string) string {
	return "n,a=" + gs2Escape(user) + ",\x01auth=Bearer " + token + "\x01\x01"
}

// gs2Escape escapes "," and "=" in a GS2 authzid (RFC 5801 section 4).
func gs2Escape(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// AuthXOAUTH2 logs in with AUTH XOAUTH2 and a bearer token. The initial
// response goes in a continuation after the server's "+ " — never on the
// AUTH line — which is what Microsoft 365 requires and every other server
// accepts (RFC 5034). A refused token is a *TokenRefusedError (wrapping
// ErrTokenRefused and the *Error); the token is in no error or log.
func (c *Client) AuthXOAUTH2(ctx context.Context, user, token string) error {
	return c.authBearer(ctx, "auth xoauth2", "AUTH XOAUTH2", xoauth2Response(user, token), "", token)
}

// AuthOAuthBearer logs in with AUTH OAUTHBEARER (RFC 7628) and a bearer
// token, in the same two steps as AuthXOAUTH2. After an error challenge
// the client sends the dummy response %x01 that RFC 7628 section 3.2.3
// asks for.
func (c *Client) AuthOAuthBearer(ctx context.Context, user, token string) error {
	return c.authBearer(ctx, "auth oauthbearer", "AUTH OAUTHBEARER", oauthBearerResponse(user, token), "\x01", token)
}

func (c *Client) authBearer(ctx context.Context, op, cmd, initial, dummy, token string) error {
	if strings.ContainsAny(initial[:len(initial)-2], "\x00\r\n") || strings.Count(initial, "\x01") != 3 {
		return fmt.Errorf("pop3: %s: user or token contains NUL, CR, LF or ^A", op)
	}
	if err := c.begin(ctx, op); err != nil {
		return err
	}
	stop := c.watch(ctx)
	defer stop()
	if err := c.send(ctx, op, cmd, cmd); err != nil {
		return err
	}
	resp := base64.StdEncoding.EncodeToString([]byte(initial))
	secrets := []string{token, resp}
	st, err := c.readStatusOpts(ctx, op, true, secrets...)
	if err != nil {
		return err
	}
	if !st.cont {
		return c.fail(ctx, op, fmt.Errorf("%w: +OK before the token was sent", ErrMalformed))
	}
	if err := c.send(ctx, op, resp, "[redacted]"); err != nil {
		return err
	}
	st, err = c.readStatusOpts(ctx, op, true, secrets...)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return fmt.Errorf("pop3: %s: %w", op, &TokenRefusedError{Mechanism: cmd[5:], Err: pe})
		}
		return err
	}
	if !st.cont {
		return nil
	}
	// An error challenge: answer it (an empty response for XOAUTH2, %x01
	// for OAUTHBEARER) and read the -ERR that follows.
	failure, perr := parseOAuth2Challenge(st.text)
	if err := c.send(ctx, op, base64.StdEncoding.EncodeToString([]byte(dummy)), "[error challenge answered]"); err != nil {
		return err
	}
	st, err = c.readStatusOpts(ctx, op, false, secrets...)
	var pe *Error
	switch {
	case errors.As(err, &pe):
		tre := &TokenRefusedError{Mechanism: cmd[5:], Err: pe}
		if perr == nil {
			tre.Failure = &failure
		}
		return fmt.Errorf("pop3: %s: %w", op, tre)
	case err != nil:
		return err
	}
	_ = st
	return c.fail(ctx, op, fmt.Errorf("%w: +OK after an error challenge", ErrMalformed))
}
