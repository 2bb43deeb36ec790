package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imapbridge/imapbridge/internal/dovecottest"
)

// SIGTERM while an IMAP client is in the middle of a long FETCH (one 8 MiB
// message, read slowly) and a poll of the POP3 host (real Dovecot, behind
// a fault proxy that holds a RETR) is in flight. The shutdown runs its
// phases in order, each logged once: stop accepting, drain the IMAP
// sessions (the FETCH response being written is finished, then BYE), stop
// the pollers (the held poll is aborted), close the store — so the store
// closes only after the pollers stopped. The client gets the message
// whole and byte-exact, then BYE; after a restart every message delivered
// at the host is in INBOX exactly once (after_sync: nothing was deleted at
// the host that was not stored).
func TestShutdownPhasesDuringLongFetch(t *testing.T) {
	t.Parallel()
	const (
		popPW = "pop-Phases-31"
		first = 4       // messages stored before the shutdown
		large = 8 << 20 // the last of them: more than the sockets buffer
	)
	e := newP3Env(t, dovecottest.Options{Users: []dovecottest.User{{Name: "alice", Password: popPW}}})
	expected := map[string][]byte{}
	var bodies [][]byte // by UID - 1: UIDs follow delivery order
	deliver := func(i, size int) {
		m := p3GenMessage("phases", i, size)
		e.srv.Deliver("alice", m)
		want := dovecottest.ExpectedPOP3(m)
		expected[p3MessageID(m)] = want
		bodies = append(bodies, want)
	}
	for i := 1; i < first; i++ {
		deliver(i, 4096)
	}
	deliver(first, large)
	proxy := newFaultProxy(t, e.srv.Addr())
	cfg := e.config([]p3Source{{Name: "legacy", Address: proxy.Addr(), Poll: 200 * time.Millisecond, Timeout: 5 * time.Minute, DeletePolicy: "after_sync"}},
		[]p3User{p3StaticUser(t, "alice", popPW, "legacy")}).write(t)
	p := p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", first, 60*time.Second)

	// A poll in flight: the next RETR (of a new message) is held.
	stall := &faultRule{Cmd: "RETR", User: "alice", Action: faultStall, Dur: 10 * time.Minute}
	proxy.addRule(stall)
	deliver(first+1, 4096)
	deliver(first+2, 4096)
	select {
	case <-stall.started:
	case <-time.After(60 * time.Second):
		t.Fatalf("no poll reached RETR of the new messages within 60s")
	}

	// A long FETCH, read a little, with a small receive buffer so that the
	// bridge is still writing it when SIGTERM comes.
	conn, err := net.DialTimeout("tcp", e.imap, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReaderSize(conn, 4096)
	imapCommand(t, conn, r, "a", "LOGIN alice "+p3IMAPPassword)
	imapCommand(t, conn, r, "b", "SELECT INBOX")
	if _, err := fmt.Fprintf(conn, "c UID FETCH %d (BODY.PEEK[])\r\n", first); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatalf("start of the FETCH response: %v", err)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	p3WaitFor(t, 30*time.Second, "the log line of phase 1", func() (bool, string) {
		return strings.Contains(e.logs.String(), `msg="shutdown: stopped accepting"`), "not logged yet"
	})
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading the FETCH to its end: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("bridge exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("bridge did not exit within 60s of SIGTERM")
	}

	// What the client got: whole FETCH responses, byte-exact, then BYE.
	got, tail := parseFetchStream(t, append(head, rest...))
	if body, ok := got[first]; len(got) != 1 || !ok {
		t.Errorf("FETCH responses for UIDs %v, want one for UID %d", fetchedUIDs(got), first)
	} else if !bytes.Equal(body, bodies[first-1]) {
		t.Errorf("FETCH UID %d: %d bytes, differing from the %d the host delivered (first difference at byte %d)",
			first, len(body), len(bodies[first-1]), p3FirstDifference(body, bodies[first-1]))
	}
	if tail != "* BYE Server shutting down\r\n" && tail != "c OK UID FETCH completed\r\n* BYE Server shutting down\r\n" {
		t.Errorf("after %d FETCH responses the stream ends with %q, want the BYE", len(got), tail)
	}

	// The log: the phases in order, each once; the store after the pollers.
	logs := e.logs.String()
	last := -1
	for _, msg := range []string{"shutting down", "shutdown: stopped accepting", "shutdown: sessions drained", "shutdown: pollers stopped", "shutdown: store closed", "stopped"} {
		key := "msg=" + strconv.Quote(msg)
		if !strings.Contains(msg, " ") {
			key = "msg=" + msg
		}
		i := strings.LastIndex(logs, key+" ")
		if i < 0 {
			i = strings.LastIndex(logs, key+"\n")
		}
		switch {
		case i < 0:
			t.Errorf("no log line %s", key)
		case i < last:
			t.Errorf("log line %s comes before the phase ahead of it", key)
		default:
			last = i
		}
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "msg=\"shutdown: ") {
			t.Log(line)
		}
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("the shutdown logged an error: %s", line)
		}
	}

	// Nothing lost: after a restart (the stall fired once), INBOX holds
	// every message delivered at the host, once.
	p = p3LaunchBridge(t, cfg, e.imap, e.admin, e.logs)
	defer p.stop()
	_, msgs := p3WaitCount(t, e.imap, "alice", p3IMAPPassword, "INBOX", first+2, 60*time.Second)
	p3CheckMessages(t, "alice's INBOX after the restart", msgs, expected)
}

func fetchedUIDs(m map[int][]byte) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// imapCommand sends one command and reads up to its tagged OK.
func imapCommand(t *testing.T, w io.Writer, r *bufio.Reader, tag, cmd string) {
	t.Helper()
	if _, err := fmt.Fprintf(w, "%s %s\r\n", tag, cmd); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if strings.HasPrefix(line, tag+" ") {
			if !strings.HasPrefix(line, tag+" OK") {
				t.Fatalf("%s: %q", cmd, line)
			}
			return
		}
	}
}

var (
	reFetchStart = regexp.MustCompile(`^\* \d+ FETCH \((.*)\{(\d+)\}\r\n$`)
	reFetchUID   = regexp.MustCompile(`\bUID (\d+)\b`)
)

// parseFetchStream splits a stream of "* n FETCH (UID u BODY[] {len}"
// responses into bodies by UID, and returns what follows the last whole
// response. A response cut short is a test failure.
func parseFetchStream(t *testing.T, data []byte) (map[int][]byte, string) {
	t.Helper()
	got := map[int][]byte{}
	for len(data) > 0 {
		i := bytes.Index(data, []byte("\r\n"))
		if i < 0 {
			return got, string(data)
		}
		m := reFetchStart.FindSubmatch(data[:i+2])
		if m == nil {
			return got, string(data)
		}
		n, _ := strconv.Atoi(string(m[2]))
		body := data[i+2:]
		if len(body) < n {
			t.Errorf("a FETCH response cut short: %d of %d bytes", len(body), n)
			return got, ""
		}
		after := body[n:]
		j := bytes.Index(after, []byte("\r\n"))
		if j < 0 {
			t.Errorf("a FETCH response cut short after its literal")
			return got, ""
		}
		u := reFetchUID.FindSubmatch(append(append([]byte{}, m[1]...), after[:j]...))
		if u == nil {
			t.Errorf("a FETCH response without a UID: %q", append(m[1], after[:j]...))
			return got, ""
		}
		uid, _ := strconv.Atoi(string(u[1]))
		got[uid] = body[:n]
		data = after[j+2:]
	}
	return got, ""
}
