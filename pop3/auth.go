package pop3

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// StartTLS sends STLS (RFC 2595) and starts TLS with cfg (nil means
// Options.TLSConfig). The capabilities are forgotten: call Capa again. Data
// the server sent after its +OK and before the handshake (a plain-text
// injection) fails the call and closes the connection.
func (c *Client) StartTLS(ctx context.Context, cfg *tls.Config) error {
	const op = "stls"
	if c.tlsState != nil {
		return fmt.Errorf("pop3: %s: TLS is already active", op)
	}
	if err := c.begin(ctx, op); err != nil {
		return err
	}
	stop := c.watch(ctx)
	defer stop()
	if err := c.send(ctx, op, "STLS", "STLS"); err != nil {
		return err
	}
	if _, err := c.readStatus(ctx, op); err != nil {
		return err
	}
	if n := c.r.Buffered(); n > 0 {
		return c.fail(ctx, op, fmt.Errorf("server sent %d bytes after +OK, before the TLS handshake (refusing a possible plain-text injection)", n))
	}
	if err := c.handshake(ctx, cfg); err != nil {
		return c.fail(ctx, op, fmt.Errorf("tls handshake: %w", err))
	}
	c.caps = nil
	return nil
}

// User sends USER name.
func (c *Client) User(ctx context.Context, name string) error {
	_, err := c.simple(ctx, "user", "USER "+name)
	return err
}

// Pass sends PASS password. The password appears in no error or log: a
// reply that echoes it has it replaced by "[redacted]".
func (c *Client) Pass(ctx context.Context, password string) error {
	const op = "pass"
	if err := c.begin(ctx, op); err != nil {
		return err
	}
	stop := c.watch(ctx)
	defer stop()
	if err := c.send(ctx, op, "PASS "+password, "PASS [redacted]"); err != nil {
		return err
	}
	_, err := c.readStatusOpts(ctx, op, false, password)
	return err
}

// Login sends USER and PASS.
func (c *Client) Login(ctx context.Context, name, password string) error {
	if err := c.User(ctx, name); err != nil {
		return err
	}
	return c.Pass(ctx, password)
}

// APOPTimestamp returns the timestamp of the greeting ("<pid.clock@host>")
// that APOP needs, or "" if the server sent none.
func (c *Client) APOPTimestamp() string { return c.timestamp }

// APOP logs in with APOP (RFC 1939 section 7): the password is sent only as
// an MD5 digest of the greeting's timestamp and the password. It fails with
// ErrNotSupported when the greeting had no timestamp.
func (c *Client) APOP(ctx context.Context, name, password string) error {
	const op = "apop"
	if c.timestamp == "" {
		return fmt.Errorf("pop3: %s: %w: the greeting has no APOP timestamp", op, ErrNotSupported)
	}
	if err := c.begin(ctx, op); err != nil {
		return err
	}
	stop := c.watch(ctx)
	defer stop()
	sum := md5.Sum([]byte(c.timestamp + password))
	digest := hex.EncodeToString(sum[:])
	if err := c.send(ctx, op, "APOP "+name+" "+digest, "APOP "+name+" [redacted]"); err != nil {
		return err
	}
	_, err := c.readStatusOpts(ctx, op, false, password, digest)
	return err
}

// AuthPlain logs in with AUTH PLAIN (RFC 5034, RFC 4616). identity is the
// authorization identity, normally "". The credentials go in the
// continuation, which servers of both RFC 1734 and RFC 5034 accept.
func (c *Client) AuthPlain(ctx context.Context, identity, name, password string) error {
	const op = "auth plain"
	if err := c.begin(ctx, op); err != nil {
		return err
	}
	stop := c.watch(ctx)
	defer stop()
	if err := c.send(ctx, op, "AUTH PLAIN", "AUTH PLAIN"); err != nil {
		return err
	}
	st, err := c.readStatusOpts(ctx, op, true)
	if err != nil {
		return err
	}
	if !st.cont {
		return c.fail(ctx, op, fmt.Errorf("%w: +OK before any credentials were sent", ErrMalformed))
	}
	resp := base64.StdEncoding.EncodeToString([]byte(identity + "\x00" + name + "\x00" + password))
	if err := c.send(ctx, op, resp, "[redacted]"); err != nil {
		return err
	}
	st, err = c.readStatusOpts(ctx, op, true, password, resp)
	if err != nil {
		return err
	}
	if st.cont {
		// PLAIN has one step. Cancel the exchange (RFC 5034 section 4).
		if err := c.send(ctx, op, "*", "*"); err != nil {
			return err
		}
		if _, err := c.readStatusOpts(ctx, op, false, password, resp); err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				return err
			}
		}
		return fmt.Errorf("pop3: %s: %w: server asked for a second step", op, ErrMalformed)
	}
	return nil
}
