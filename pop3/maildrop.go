package pop3

import (
	"context"
	"errors"
	"fmt"
)

// Stat sends STAT: the number of messages and their total size in octets.
func (c *Client) Stat(ctx context.Context) (count int, size int64, err error) {
	st, err := c.simple(ctx, "stat", "STAT")
	if err != nil {
		return 0, 0, err
	}
	count, size, err = parseStat(st.text)
	if err != nil {
		return 0, 0, fmt.Errorf("pop3: stat: %w", err)
	}
	return count, size, nil
}

// List sends LIST: every message's number and size. A malformed or
// duplicated line is an error (after the whole listing has been read, so
// that the session stays usable).
func (c *Client) List(ctx context.Context) ([]MsgInfo, error) {
	if _, err := c.simple(ctx, "list", "LIST"); err != nil {
		return nil, err
	}
	var out []MsgInfo
	var seen numSet
	err := c.readListing(ctx, "list", func(line string) error {
		mi, err := parseListLine(line)
		if err != nil {
			return err
		}
		if !seen.add(mi.Num) {
			return fmt.Errorf("%w: message %d listed twice", ErrMalformed, mi.Num)
		}
		out = append(out, mi)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListOne sends LIST n.
func (c *Client) ListOne(ctx context.Context, n MsgNum) (MsgInfo, error) {
	op := fmt.Sprintf("list %d", n)
	if err := checkNum(op, n); err != nil {
		return MsgInfo{}, err
	}
	st, err := c.simple(ctx, op, fmt.Sprintf("LIST %d", n))
	if err != nil {
		return MsgInfo{}, err
	}
	mi, err := parseListLine(st.text)
	if err == nil && mi.Num != n {
		err = fmt.Errorf("%w: asked for message %d, got %d", ErrMalformed, n, mi.Num)
	}
	if err != nil {
		return MsgInfo{}, fmt.Errorf("pop3: %s: %w", op, err)
	}
	return mi, nil
}

// UIDL sends UIDL: every message's number and unique id. A malformed line or
// a message number listed twice is an error; the same uid on two messages
// is passed on (a broken server's doing: see Source for how ids stay
// distinct).
func (c *Client) UIDL(ctx context.Context) ([]UIDLInfo, error) {
	if _, err := c.simple(ctx, "uidl", "UIDL"); err != nil {
		return nil, err
	}
	var out []UIDLInfo
	var seen numSet
	err := c.readListing(ctx, "uidl", func(line string) error {
		ui, err := parseUIDLLine(line)
		if err != nil {
			return err
		}
		if !seen.add(ui.Num) {
			return fmt.Errorf("%w: message %d listed twice", ErrMalformed, ui.Num)
		}
		out = append(out, ui)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UIDLOne sends UIDL n.
func (c *Client) UIDLOne(ctx context.Context, n MsgNum) (UIDL, error) {
	op := fmt.Sprintf("uidl %d", n)
	if err := checkNum(op, n); err != nil {
		return "", err
	}
	st, err := c.simple(ctx, op, fmt.Sprintf("UIDL %d", n))
	if err != nil {
		return "", err
	}
	ui, err := parseUIDLLine(st.text)
	if err == nil && ui.Num != n {
		err = fmt.Errorf("%w: asked for message %d, got %d", ErrMalformed, n, ui.Num)
	}
	if err != nil {
		return "", fmt.Errorf("pop3: %s: %w", op, err)
	}
	return ui.UIDL, nil
}

// Dele sends DELE n: the message is deleted when the session ends with
// QUIT, and not at all if it ends otherwise or after RSET.
func (c *Client) Dele(ctx context.Context, n MsgNum) error {
	op := fmt.Sprintf("dele %d", n)
	if err := checkNum(op, n); err != nil {
		return err
	}
	_, err := c.simple(ctx, op, fmt.Sprintf("DELE %d", n))
	return err
}

// DeleMany sends DELE for each of nums, pipelined when the server
// advertised PIPELINING, and returns the numbers the server accepted. Every
// command is sent; the -ERR replies are returned joined (each a *Error
// naming its message).
func (c *Client) DeleMany(ctx context.Context, nums []MsgNum) ([]MsgNum, error) {
	for _, n := range nums {
		if err := checkNum(fmt.Sprintf("dele %d", n), n); err != nil {
			return nil, err
		}
	}
	if len(nums) == 0 {
		return nil, nil
	}
	if err := c.begin(ctx, "dele"); err != nil {
		return nil, err
	}
	stop := c.watch(ctx)
	defer stop()
	cmd := func(k int) (string, string) {
		return fmt.Sprintf("dele %d", nums[k]), fmt.Sprintf("DELE %d", nums[k])
	}
	window := c.pipelineWindow()
	var (
		errs []error
		done []MsgNum
		sent int
	)
	for i := range nums {
		if err := c.fill(ctx, &sent, i+window, len(nums), cmd); err != nil {
			return done, errors.Join(append(errs, err)...)
		}
		op, _ := cmd(i)
		if _, err := c.readStatus(ctx, op); err != nil {
			errs = append(errs, err)
			if c.broken != nil {
				break
			}
			continue
		}
		done = append(done, nums[i])
	}
	return done, errors.Join(errs...)
}

// numSet is a set of message numbers for a listing's duplicate check.
// Servers list numbers in ascending order, which needs no map at all: a
// number above every one so far is new. Only a number out of order makes
// it a map (of every number added).
type numSet struct {
	max  MsgNum
	all  []MsgNum // every number, while in order
	used map[MsgNum]bool
}

// add adds n and reports whether it was not in the set.
func (s *numSet) add(n MsgNum) bool {
	if s.used == nil {
		if n > s.max {
			s.max = n
			s.all = append(s.all, n)
			return true
		}
		s.used = make(map[MsgNum]bool, len(s.all)+1)
		for _, m := range s.all {
			s.used[m] = true
		}
		s.all = nil
	}
	if s.used[n] {
		return false
	}
	s.used[n] = true
	return true
}
