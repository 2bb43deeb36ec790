package imapfront_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapbridge/imapbridge/bridge"
)

// seqModel is a client's idea of a mailbox, kept only from what the server
// pushes: EXISTS grows it, EXPUNGE removes a number, FETCH names the UID at
// a number. A wrong sequence number anywhere shows up as a contradiction.
type seqModel struct {
	uids []uint32 // 0: not known yet
}

func (m *seqModel) apply(line string) error {
	f := strings.Fields(line)
	if len(f) < 3 || f[0] != "*" {
		return nil
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return nil // * FLAGS, * OK …
	}
	switch f[2] {
	case "EXISTS":
		if n < len(m.uids) {
			return fmt.Errorf("EXISTS %d shrinks %d", n, len(m.uids))
		}
		for len(m.uids) < n {
			m.uids = append(m.uids, 0)
		}
	case "EXPUNGE":
		if n < 1 || n > len(m.uids) {
			return fmt.Errorf("EXPUNGE %d out of range 1..%d", n, len(m.uids))
		}
		m.uids = append(m.uids[:n-1], m.uids[n:]...)
	case "FETCH":
		i := strings.Index(line, "UID ")
		if i < 0 {
			return fmt.Errorf("FETCH without UID: %q", line)
		}
		uid, err := strconv.Atoi(strings.TrimRight(strings.Fields(line[i+4:])[0], ")"))
		if err != nil {
			return fmt.Errorf("FETCH %q: %v", line, err)
		}
		if n < 1 || n > len(m.uids) {
			return fmt.Errorf("FETCH %d out of range 1..%d: %q", n, len(m.uids), line)
		}
		switch m.uids[n-1] {
		case 0:
			m.uids[n-1] = uint32(uid)
		case uint32(uid):
		default:
			return fmt.Errorf("FETCH %d says UID %d, model has %d: %q", n, uid, m.uids[n-1], line)
		}
	}
	return nil
}

// observer is a raw session that idles in INBOX and checks every push.
type observer struct {
	conn  net.Conn
	r     *bufio.Reader
	model seqModel
}

func (o *observer) readUntil(tag string) error {
	for {
		o.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		l, err := o.r.ReadString('\n')
		if err != nil {
			return err
		}
		l = strings.TrimSuffix(l, "\r\n")
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				return fmt.Errorf("%s", l)
			}
			return nil
		}
		if err := o.model.apply(l); err != nil {
			return err
		}
	}
}

func (o *observer) cmd(tag, cmd string) error {
	if _, err := fmt.Fprintf(o.conn, "%s %s\r\n", tag, cmd); err != nil {
		return err
	}
	return o.readUntil(tag)
}

func TestConcurrentSessionsStayInStep(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 20; i++ {
		e.deliver("alice", simpleMsg(i))
	}

	var observers []*observer
	for i := 0; i < 2; i++ {
		c := e.raw()
		c.login("alice")
		o := &observer{conn: c.conn, r: c.r}
		if err := o.cmd("s", "SELECT INBOX"); err != nil {
			t.Fatal(err)
		}
		if err := o.cmd("f", "FETCH 1:* (UID)"); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(o.conn, "idle IDLE\r\n")
		if l, _ := o.r.ReadString('\n'); l != "+ idling\r\n" {
			t.Fatalf("IDLE: %q", l)
		}
		observers = append(observers, o)
	}
	obsErr := make([]error, len(observers))
	var obsWG sync.WaitGroup
	for i, o := range observers {
		obsWG.Add(1)
		go func() {
			defer obsWG.Done()
			obsErr[i] = o.readUntil("idle")
		}()
	}

	// Writers: three sessions and the source, each doing random changes.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- writer(ctx, e.addr, uint64(w), 40)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		u, err := e.b.User(ctx, "alice")
		if err != nil {
			errs <- err
			return
		}
		for i := 0; i < 10; i++ {
			e.src.Deliver("alice", []byte(simpleMsg(100+i)), time.Now())
			if _, err := e.b.Poll(ctx, u, bridge.Feed{Source: e.src, Account: bridge.Account{User: "alice"}}); err != nil {
				errs <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		errs <- nil
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	}

	for _, o := range observers {
		fmt.Fprintf(o.conn, "DONE\r\n")
	}
	obsWG.Wait()
	mb, err := e.user("alice").Mailbox(e.ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var want []uint32
	for _, u := range mb.UIDs() {
		want = append(want, uint32(u))
	}
	for i, o := range observers {
		if obsErr[i] != nil {
			t.Fatalf("observer %d: %v", i, obsErr[i])
		}
		if err := o.cmd("n", "NOOP"); err != nil {
			t.Fatalf("observer %d NOOP: %v", i, err)
		}
		if err := o.cmd("f2", "FETCH 1:* (UID)"); err != nil {
			t.Fatalf("observer %d FETCH: %v", i, err)
		}
		if len(o.model.uids) != len(want) || (len(want) > 0 && !reflect.DeepEqual(o.model.uids, want)) {
			t.Errorf("observer %d sees %v\nmailbox has %v", i, o.model.uids, want)
		}
	}
	if len(want) == 0 {
		t.Error("everything got expunged; the test proves little")
	}
}

// writer makes n random changes to alice's INBOX through its own session.
func writer(ctx context.Context, addr string, seed uint64, n int) error {
	rng := rand.New(rand.NewPCG(seed, 42))
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login("alice", password).Wait(); err != nil {
		return err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return err
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		uids := data.AllUIDs()
		pick := func() imap.UIDSet {
			if len(uids) == 0 {
				return imap.UIDSetNum(1)
			}
			return imap.UIDSetNum(uids[rng.IntN(len(uids))])
		}
		// Weighted so the mailbox grows: removals are 2 in 8.
		switch op := rng.IntN(8); op {
		case 0, 1, 2:
			flag := []imap.Flag{imap.FlagSeen, imap.FlagFlagged, imap.Flag("$Label" + strconv.Itoa(rng.IntN(3)))}[rng.IntN(3)]
			ops := []imap.StoreFlagsOp{imap.StoreFlagsAdd, imap.StoreFlagsDel}
			err = c.Store(pick(), &imap.StoreFlags{Op: ops[rng.IntN(2)], Flags: []imap.Flag{flag}, Silent: rng.IntN(2) == 0}, nil).Close()
		case 3:
			set := pick()
			if err = c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err == nil {
				_, err = c.UIDExpunge(set).Collect()
			}
		case 4, 5:
			msg := simpleMsg(1000 + int(seed)*100 + i)
			cmd := c.Append("INBOX", int64(len(msg)), nil)
			cmd.Write([]byte(msg))
			cmd.Close()
			_, err = cmd.Wait()
		case 6:
			_, err = c.Move(pick(), "Archive").Wait()
		case 7:
			err = c.Noop().Wait()
		}
		if err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
	}
	return nil
}
