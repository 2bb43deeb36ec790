package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// pop3Conn is the bare POP3 client of the baselines: one command at a time
// on one connection, multi-line answers read to the terminating "." and
// counted, nothing stored.
type pop3Conn struct {
	c net.Conn
	r *bufio.Reader
}

func dialPOP3(ctx context.Context, addr, user, pass string) (*pop3Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pop3: dial %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(10 * time.Minute))
	}
	p := &pop3Conn{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	if _, err := p.status(); err != nil {
		c.Close()
		return nil, fmt.Errorf("pop3: greeting: %w", err)
	}
	for _, cmd := range []string{"USER " + user, "PASS " + pass} {
		if _, err := p.cmd(cmd); err != nil {
			c.Close()
			return nil, fmt.Errorf("pop3: %s: %w", strings.Fields(cmd)[0], err)
		}
	}
	return p, nil
}

func (p *pop3Conn) status() (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "+OK") {
		return "", fmt.Errorf("%q", strings.TrimSpace(line))
	}
	return line, nil
}

func (p *pop3Conn) cmd(cmd string) (string, error) {
	if _, err := io.WriteString(p.c, cmd+"\r\n"); err != nil {
		return "", err
	}
	return p.status()
}

// multi sends cmd and reads its multi-line answer, returning the number of
// lines and bytes (dot-unstuffed, CRLF counted) in it.
func (p *pop3Conn) multi(cmd string) (lines int, n int64, err error) {
	if _, err := p.cmd(cmd); err != nil {
		return 0, 0, fmt.Errorf("pop3: %s: %w", cmd, err)
	}
	for {
		line, err := p.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			n += int64(len(line))
			continue
		}
		if err != nil {
			return lines, n, fmt.Errorf("pop3: %s: %w", cmd, err)
		}
		if bytes.Equal(line, []byte(".\r\n")) {
			return lines, n, nil
		}
		lines++
		n += int64(len(line))
		if line[0] == '.' {
			n--
		}
	}
}

func (p *pop3Conn) quit() {
	p.cmd("QUIT")
	p.c.Close()
}
