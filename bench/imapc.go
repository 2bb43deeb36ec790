package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// imapConn is a minimal IMAP client over one TCP connection: tagged
// commands, untagged responses handed to a callback, literals either kept
// (inlined in the logical line) or counted and discarded. The same client
// talks to imapbridge and to Dovecot, so both pay the same client costs.
type imapConn struct {
	c   net.Conn
	r   *bufio.Reader
	tag int
	// litBytes counts literal bytes read since the last reset.
	litBytes int64
}

// dialIMAP connects, reads the greeting and logs in.
func dialIMAP(ctx context.Context, addr, user, pass string) (*imapConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("imap: dial %s: %w", addr, err)
	}
	ic := &imapConn{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	stop := ic.watch(ctx)
	defer stop()
	line, err := ic.readLogical(false)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("imap: greeting from %s: %w", addr, err)
	}
	if !bytes.HasPrefix(line, []byte("* OK")) {
		c.Close()
		return nil, fmt.Errorf("imap: greeting from %s: %q", addr, line)
	}
	if _, err := ic.run(ctx, fmt.Sprintf("LOGIN %s %s", quote(user), quote(pass)), false, nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap: login %s at %s: %w", user, addr, err)
	}
	return ic, nil
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// watch closes nothing but sets a past deadline when ctx ends, so a
// blocked read returns; the returned func stops watching.
func (c *imapConn) watch(ctx context.Context) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-ctx.Done():
			c.c.SetDeadline(time.Unix(1, 0))
		case <-done:
		}
	}()
	return func() { close(done); <-finished }
}

// readLogical reads one response line, with its literals: inlined when keep
// is true, otherwise replaced by "{N}" and counted in litBytes.
func (c *imapConn) readLogical(keep bool) ([]byte, error) {
	var out []byte
	for {
		line, err := c.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			full := append([]byte(nil), line...)
			rest, err2 := c.r.ReadBytes('\n')
			line, err = append(full, rest...), err2
		}
		if err != nil {
			return nil, err
		}
		out = append(out, line...)
		n, ok := literalLen(line)
		if !ok {
			return bytes.TrimRight(out, "\r\n"), nil
		}
		if keep {
			start := len(out)
			out = append(out, make([]byte, n)...)
			if _, err := io.ReadFull(c.r, out[start:]); err != nil {
				return nil, err
			}
		} else {
			if _, err := c.r.Discard(int(n)); err != nil {
				return nil, err
			}
		}
		c.litBytes += n
	}
}

// literalLen reports whether line ends in "{N}\r\n" (or "{N+}"), and N.
func literalLen(line []byte) (int64, bool) {
	l := bytes.TrimRight(line, "\r\n")
	if len(l) < 3 || l[len(l)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false
	}
	num := strings.TrimSuffix(string(l[i+1:len(l)-1]), "+")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// run sends one tagged command and reads until its tagged response. Every
// untagged or continuation line goes to fn (if not nil). A NO or BAD is an
// error naming the command.
func (c *imapConn) run(ctx context.Context, cmd string, keep bool, fn func(line []byte)) ([]byte, error) {
	stop := c.watch(ctx)
	defer stop()
	c.tag++
	tag := "b" + strconv.Itoa(c.tag)
	if _, err := io.WriteString(c.c, tag+" "+cmd+"\r\n"); err != nil {
		return nil, fmt.Errorf("imap: send %s: %w", verb(cmd), err)
	}
	prefix := []byte(tag + " ")
	for {
		line, err := c.readLogical(keep)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("imap: %s: %w", verb(cmd), err)
		}
		if bytes.HasPrefix(line, prefix) {
			rest := line[len(prefix):]
			if !bytes.HasPrefix(rest, []byte("OK")) {
				return nil, fmt.Errorf("imap: %s: %s", verb(cmd), rest)
			}
			return rest, nil
		}
		if fn != nil {
			fn(line)
		}
	}
}

func verb(cmd string) string {
	if i := strings.IndexByte(cmd, ' '); i > 0 {
		cmd = cmd[:i]
	}
	if cmd == "UID" {
		return "UID command"
	}
	return cmd
}

// exists returns N of a "* N EXISTS" line.
func exists(line []byte) (int, bool) {
	if !bytes.HasPrefix(line, []byte("* ")) || !bytes.HasSuffix(line, []byte(" EXISTS")) {
		return 0, false
	}
	n, err := strconv.Atoi(string(line[2 : len(line)-len(" EXISTS")]))
	return n, err == nil
}

// selectBox selects mailbox and returns its EXISTS count.
func (c *imapConn) selectBox(ctx context.Context, mailbox string) (int, error) {
	n := -1
	_, err := c.run(ctx, "SELECT "+quote(mailbox), false, func(line []byte) {
		if v, ok := exists(line); ok {
			n = v
		}
	})
	if err == nil && n < 0 {
		err = errors.New("imap: SELECT: no EXISTS")
	}
	return n, err
}

// fetchCount runs a FETCH command and counts its FETCH responses.
func (c *imapConn) fetchCount(ctx context.Context, cmd string) (int, error) {
	n := 0
	_, err := c.run(ctx, cmd, false, func(line []byte) {
		if bytes.Contains(line, []byte(" FETCH (")) {
			n++
		}
	})
	return n, err
}

// search runs a SEARCH command and returns the number of hits.
func (c *imapConn) search(ctx context.Context, cmd string) (int, error) {
	n := 0
	_, err := c.run(ctx, cmd, false, func(line []byte) {
		if rest, ok := bytes.CutPrefix(line, []byte("* SEARCH")); ok {
			n += len(bytes.Fields(rest))
		}
	})
	return n, err
}

// idleStart sends IDLE and waits for the continuation. Untagged lines read
// meanwhile go to fn.
func (c *imapConn) idleStart(ctx context.Context, fn func(line []byte)) error {
	stop := c.watch(ctx)
	defer stop()
	c.tag++
	if _, err := io.WriteString(c.c, "b"+strconv.Itoa(c.tag)+" IDLE\r\n"); err != nil {
		return fmt.Errorf("imap: send IDLE: %w", err)
	}
	for {
		line, err := c.readLogical(false)
		if err != nil {
			return fmt.Errorf("imap: IDLE: %w", err)
		}
		if bytes.HasPrefix(line, []byte("+")) {
			return nil
		}
		if !bytes.HasPrefix(line, []byte("* ")) {
			return fmt.Errorf("imap: IDLE: %q", line)
		}
		if fn != nil {
			fn(line)
		}
	}
}

// waitExists reads untagged lines during IDLE until an EXISTS of at least
// want arrives, and returns when it arrived.
func (c *imapConn) waitExists(ctx context.Context, want int) (time.Time, error) {
	stop := c.watch(ctx)
	defer stop()
	for {
		line, err := c.readLogical(false)
		if err != nil {
			if ctx.Err() != nil {
				return time.Time{}, ctx.Err()
			}
			return time.Time{}, fmt.Errorf("imap: waiting for EXISTS %d: %w", want, err)
		}
		if n, ok := exists(line); ok && n >= want {
			return time.Now(), nil
		}
	}
}

// idleDone ends IDLE and reads the tagged OK.
func (c *imapConn) idleDone(ctx context.Context) error {
	stop := c.watch(ctx)
	defer stop()
	if _, err := io.WriteString(c.c, "DONE\r\n"); err != nil {
		return fmt.Errorf("imap: send DONE: %w", err)
	}
	prefix := []byte("b" + strconv.Itoa(c.tag) + " ")
	for {
		line, err := c.readLogical(false)
		if err != nil {
			return fmt.Errorf("imap: IDLE DONE: %w", err)
		}
		if bytes.HasPrefix(line, prefix) {
			return nil
		}
	}
}

// logout says LOGOUT (best effort) and closes the connection.
func (c *imapConn) logout() {
	c.c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c.c, "z LOGOUT\r\n")
	io.Copy(io.Discard, c.r)
	c.c.Close()
}
