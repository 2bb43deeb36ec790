package imapfront_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// pipeListener hands out the server ends of in-memory connections.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial returns the client end of a new connection the server accepts.
func (l *pipeListener) dial() (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
		c.Close()
		s.Close()
		return nil, net.ErrClosed
	case <-time.After(5 * time.Second):
		c.Close()
		s.Close()
		return nil, errors.New("the server accepts no connection")
	}
}

// FuzzSession feeds any bytes to a logged-in session with INBOX selected
// (and, on the other branch, to a session before login): go-imap's command
// parser first, then this package's handlers. After each input the server
// must have recovered no panic and must still serve a new connection
// (greeting, LOGIN, LOGOUT).
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"c FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.10> BINARY.PEEK[1] RFC822.SIZE INTERNALDATE)",
		"c UID FETCH 1:*,3,5:2 (BODY[1.2.MIME] BODY[TEXT]<5.1> BINARY.SIZE[2])",
		`c SEARCH CHARSET UTF-8 OR (SUBJECT "grüße" FROM alice) NOT (SENTBEFORE 1-Jan-2000 LARGER 10) UID 1:* KEYWORD $x HEADER "X-A" ""`,
		"c UID SEARCH RETURN (MIN MAX COUNT SAVE) UNSEEN\r\nd FETCH $ (FLAGS)",
		`c STORE 1:* +FLAGS (\Seen \Flagged $Label1)` + "\r\nd UID STORE 1 -FLAGS.SILENT (\\Seen)\r\ne STORE 1 FLAGS ()",
		"c APPEND INBOX (\\Seen) \"05-Mar-2024 10:00:00 +0100\" {23}\r\nSubject: x\r\n\r\nhello\r\n",
		"c APPEND INBOX {5+}\r\nhello",
		"c IDLE\r\nDONE",
		"c CREATE \"&AOQ-/sub\" (USE (\\Archive))\r\nd RENAME \"&AOQ-/sub\" Trash/x\r\ne DELETE Trash/x",
		`c LIST (SUBSCRIBED SPECIAL-USE) "" ("*" "%/%") RETURN (CHILDREN STATUS (MESSAGES UNSEEN SIZE))`,
		"c STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE)",
		"c COPY 1:2 Archive\r\nd UID MOVE 1 Junk\r\ne UID EXPUNGE 1:*\r\nf EXPUNGE",
		"c ENABLE IMAP4rev2 UTF8=ACCEPT\r\nd SELECT INBOX (CONDSTORE)\r\ne NAMESPACE",
		"c EXAMINE Archive\r\nd UNSELECT\r\ne CLOSE\r\nf CHECK",
		"c SUBSCRIBE Sent\r\nd LSUB \"\" *\r\ne UNSUBSCRIBE Sent",
		"c FETCH 4294967295 BODY[]\r\nd FETCH 0 FLAGS\r\ne FETCH * (BODY[HEADER.FIELDS.NOT (A B)])",
		"c SEARCH {3}\r\nALL",
		"c AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==",
		"c STARTTLS",
		"* BAD\r\n\r\n)\r\n(\r\nc\r\nc FETCH (\r\nc FETCH 1 (BODY[",
	} {
		f.Add(true, []byte(s))
		f.Add(false, []byte(s))
	}
	e := newEnv(f)
	for i := 1; i <= 5; i++ {
		e.deliver("alice", simpleMsg(i))
	}
	e.deliver("alice", multipartMsg, latin1Msg)
	ln := newPipeListener()
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ln) }()
	f.Cleanup(func() {
		ln.Close()
		<-served
	})

	f.Fuzz(func(t *testing.T, loggedIn bool, input []byte) {
		c, err := ln.dial()
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			io.Copy(io.Discard, c)
		}()
		script := string(input) + "\r\nz LOGOUT\r\n"
		if loggedIn {
			script = "a LOGIN alice " + password + "\r\nb SELECT INBOX\r\n" + script
		}
		c.Write([]byte(script)) // the server may stop reading: the deadline ends the write
		<-drained
		c.Close()

		if n := e.metrics.recovered.Load(); n != 0 {
			t.Fatalf("%d panics recovered after input %q", n, input)
		}
		if err := checkServes(ln); err != nil {
			t.Fatalf("after input %q: %v", input, err)
		}
	})
}

// checkServes opens a new connection and logs in and out.
func checkServes(ln *pipeListener) error {
	c, err := ln.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	expect := func(prefix string) error {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if strings.HasPrefix(l, prefix) {
				return nil
			}
			if !strings.HasPrefix(l, "* ") {
				return errors.New("unexpected " + l)
			}
		}
	}
	if err := expect("* OK"); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "x LOGIN alice "+password+"\r\n"); err != nil {
		return err
	}
	if err := expect("x OK"); err != nil {
		return errors.New("LOGIN: " + err.Error())
	}
	if _, err := io.WriteString(c, "y LOGOUT\r\n"); err != nil {
		return err
	}
	return expect("y OK")
}
