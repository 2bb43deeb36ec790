package pop3

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// faultServer is a small scripted POP3 server on 127.0.0.1 for what a real
// server cannot be made to do on cue: cut a connection mid-RETR, stall,
// send garbage or malformed STAT/LIST/UIDL replies, refuse any command,
// lack UIDL or STLS, insist on pipelining. Without a hook it is a correct
// minimal POP3 server over msgs.
type faultServer struct {
	t   testing.TB
	ln  net.Listener
	cfg faultConfig

	mu        sync.Mutex
	commands  []string // every command line received, PASS arguments included
	committed [][]int  // per QUIT: the messages deleted
	sessions  int
	pipelined bool // a command arrived while an earlier one was unanswered
	conns     []net.Conn
	wg        sync.WaitGroup
	stop      chan struct{}
	closeOnce sync.Once
}

type faultConfig struct {
	greeting string   // default "+OK faultServer ready <1.2@fault>"
	caps     []string // CAPA lines; nil gives the default set
	noCapa   bool     // CAPA → -ERR
	msgs     []string // message data (CRLF lines), stuffed when sent
	uidls    []string // per message; nil gives "uid-<n>"
	noUIDL   bool     // UIDL → -ERR
	password string   // PASS checks it when not empty
	quitErr  string   // QUIT → this -ERR text
	// hook sees each command first (verb upper-cased); true means handled.
	hook func(c *faultConn, verb, arg string) bool
}

var defaultCaps = []string{"CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "USER", "SASL PLAIN"}

type faultConn struct {
	net.Conn
	r       *bufio.Reader
	srv     *faultServer
	deleted map[int]bool
}

func newFaultServer(t testing.TB, cfg faultConfig) *faultServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.greeting == "" {
		cfg.greeting = "+OK faultServer ready <1.2@fault>"
	}
	if cfg.caps == nil {
		cfg.caps = defaultCaps
		if cfg.noUIDL {
			// A server without UIDL does not advertise it.
			cfg.caps = []string{"CAPA", "TOP", "RESP-CODES", "PIPELINING", "USER", "SASL PLAIN"}
		}
	}
	s := &faultServer{t: t, ln: ln, cfg: cfg, stop: make(chan struct{})}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *faultServer) Addr() string { return s.ln.Addr().String() }

// close stops the server and waits for its sessions to end. It may be
// called more than once (tests call it to read the final state).
func (s *faultServer) close() {
	s.closeOnce.Do(func() { close(s.stop) })
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *faultServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, conn)
		s.sessions++
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			fc := &faultConn{Conn: conn, r: bufio.NewReader(conn), srv: s, deleted: map[int]bool{}}
			fc.session()
		}()
	}
}

// Commands returns the command lines received so far.
func (s *faultServer) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Sent reports whether any command line started with prefix.
func (s *faultServer) Sent(prefix string) bool {
	for _, c := range s.Commands() {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

func (s *faultServer) Committed() [][]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]int(nil), s.committed...)
}

func (s *faultServer) Pipelined() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pipelined
}

func (c *faultConn) send(lines ...string) {
	for _, l := range lines {
		if _, err := c.Write([]byte(l + "\r\n")); err != nil {
			return
		}
	}
}

// sendRaw writes bytes as they are.
func (c *faultConn) sendRaw(s string) { c.Write([]byte(s)) }

// sendMulti sends +OK and data dot-stuffed and terminated.
func (c *faultConn) sendMulti(first, data string) {
	c.sendRaw(first + "\r\n" + dotStuff(data))
}

// readCmd reads one command line, records it, and notes whether the client
// had already sent more (pipelining).
func (c *faultConn) readCmd() (string, bool) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", false
	}
	line = strings.TrimRight(line, "\r\n")
	c.srv.mu.Lock()
	c.srv.commands = append(c.srv.commands, line)
	if c.r.Buffered() > 0 {
		c.srv.pipelined = true
	}
	c.srv.mu.Unlock()
	return line, true
}

func (c *faultConn) session() {
	cfg := c.srv.cfg
	c.send(cfg.greeting)
	for {
		line, ok := c.readCmd()
		if !ok {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		if cfg.hook != nil && cfg.hook(c, verb, arg) {
			continue
		}
		if !c.standard(verb, arg) {
			return
		}
	}
}

// standard answers a command as a correct server would; false ends the
// session.
func (c *faultConn) standard(verb, arg string) bool {
	cfg := c.srv.cfg
	msgs := cfg.msgs
	num := func() (int, bool) {
		f := strings.Fields(arg)
		if len(f) == 0 {
			c.send("-ERR missing message number")
			return 0, false
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || n < 1 || n > len(msgs) {
			c.send(fmt.Sprintf("-ERR There's no message %s.", f[0]))
			return 0, false
		}
		if c.deleted[n] {
			c.send("-ERR Message is deleted.")
			return 0, false
		}
		return n, true
	}
	uid := func(n int) string {
		if cfg.uidls != nil {
			return cfg.uidls[n-1]
		}
		return fmt.Sprintf("uid-%d", n)
	}
	switch verb {
	case "CAPA":
		if cfg.noCapa {
			c.send("-ERR Unknown command.")
			break
		}
		c.sendMulti("+OK", strings.Join(cfg.caps, "\r\n")+"\r\n")
	case "USER":
		c.send("+OK")
	case "PASS":
		if cfg.password != "" && arg != cfg.password {
			c.send("-ERR [AUTH] Authentication failed.")
			break
		}
		c.send("+OK Logged in.")
	case "AUTH":
		if !strings.EqualFold(arg, "PLAIN") {
			c.send("-ERR Unsupported mechanism.")
			break
		}
		c.send("+ ")
		c.readCmd()
		c.send("+OK Logged in.")
	case "STAT":
		size := 0
		count := 0
		for i, m := range msgs {
			if !c.deleted[i+1] {
				size += len(m)
				count++
			}
		}
		c.send(fmt.Sprintf("+OK %d %d", count, size))
	case "LIST", "UIDL":
		if verb == "UIDL" && cfg.noUIDL {
			c.send("-ERR Unknown command: UIDL")
			break
		}
		if arg != "" {
			n, ok := num()
			if !ok {
				break
			}
			if verb == "LIST" {
				c.send(fmt.Sprintf("+OK %d %d", n, len(msgs[n-1])))
			} else {
				c.send(fmt.Sprintf("+OK %d %s", n, uid(n)))
			}
			break
		}
		var b strings.Builder
		for i, m := range msgs {
			if c.deleted[i+1] {
				continue
			}
			if verb == "LIST" {
				fmt.Fprintf(&b, "%d %d\r\n", i+1, len(m))
			} else {
				fmt.Fprintf(&b, "%d %s\r\n", i+1, uid(i+1))
			}
		}
		c.sendMulti("+OK", b.String())
	case "RETR":
		if n, ok := num(); ok {
			c.sendMulti(fmt.Sprintf("+OK %d octets", len(msgs[n-1])), msgs[n-1])
		}
	case "TOP":
		if n, ok := num(); ok {
			m := msgs[n-1]
			hdr, _, found := strings.Cut(m, "\r\n\r\n")
			if found {
				hdr += "\r\n\r\n"
			}
			c.sendMulti("+OK", hdr)
		}
	case "DELE":
		if n, ok := num(); ok {
			c.deleted[n] = true
			c.send("+OK Marked to be deleted.")
		}
	case "RSET":
		c.deleted = map[int]bool{}
		c.send("+OK")
	case "NOOP":
		c.send("+OK")
	case "QUIT":
		if cfg.quitErr != "" {
			c.send("-ERR " + cfg.quitErr)
			return false
		}
		var del []int
		for i := range msgs {
			if c.deleted[i+1] {
				del = append(del, i+1)
			}
		}
		c.srv.mu.Lock()
		c.srv.committed = append(c.srv.committed, del)
		c.srv.mu.Unlock()
		c.send("+OK Logging out.")
		return false
	default:
		c.send("-ERR Unknown command: " + verb)
	}
	return true
}
