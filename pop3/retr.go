package pop3

import (
	"context"
	"fmt"
	"io"
)

// Body is the message data of a RETR or TOP reply, streamed from the
// connection with dot-stuffing undone. Read returns io.EOF at the end of the
// message. It must be read to the end or closed before the next command;
// the next command otherwise reads (and discards) what is left.
type Body struct {
	c       *Client
	ctx     context.Context
	op      string
	dr      dotReader
	err     error  // io.EOF at the end, or the error that ended the body
	release func() // stops the context watch when the body ends
}

func (c *Client) newBody(ctx context.Context, op string, release func()) *Body {
	b := &Body{c: c, ctx: ctx, op: op, dr: dotReader{r: c.r}, release: release}
	c.body = b
	return b
}

// Read implements io.Reader. An error other than io.EOF names the command
// ("pop3: retr 3: ...") and ends the session.
func (b *Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.dr.Read(p)
	switch {
	case err == io.EOF:
		b.end(io.EOF)
	case err != nil:
		b.end(b.c.fail(b.ctx, b.op, err))
	}
	return n, b.err
}

func (b *Body) end(err error) {
	b.err = err
	if b.c.body == b {
		b.c.body = nil
	}
	if b.release != nil {
		b.release()
		b.release = nil
	}
}

// Close reads the rest of the message, so that the session can go on, and
// returns the error that ended it early, if any.
func (b *Body) Close() error {
	if b.err == nil {
		if _, err := io.Copy(io.Discard, b); err != nil {
			return err
		}
	}
	if b.err == io.EOF {
		return nil
	}
	return b.err
}

// Retr sends RETR n and returns the message as a stream. A -ERR reply is a
// *Error; the session stays usable.
func (c *Client) Retr(ctx context.Context, n MsgNum) (*Body, error) {
	op := fmt.Sprintf("retr %d", n)
	if err := checkNum(op, n); err != nil {
		return nil, err
	}
	return c.multi(ctx, op, fmt.Sprintf("RETR %d", n))
}

// Top sends TOP n lines: the message's header, the blank line after it and
// the first lines lines of its body.
func (c *Client) Top(ctx context.Context, n MsgNum, lines int) (*Body, error) {
	op := fmt.Sprintf("top %d %d", n, lines)
	if err := checkNum(op, n); err != nil {
		return nil, err
	}
	if lines < 0 {
		return nil, fmt.Errorf("pop3: %s: negative line count", op)
	}
	return c.multi(ctx, op, fmt.Sprintf("TOP %d %d", n, lines))
}

func checkNum(op string, n MsgNum) error {
	if n < 1 || n > maxMsgNum {
		return fmt.Errorf("pop3: %s: message number out of range", op)
	}
	return nil
}

func (c *Client) multi(ctx context.Context, op, line string) (*Body, error) {
	if err := c.begin(ctx, op); err != nil {
		return nil, err
	}
	stop := c.watch(ctx)
	if err := c.send(ctx, op, line, line); err != nil {
		stop()
		return nil, err
	}
	if _, err := c.readStatus(ctx, op); err != nil {
		stop()
		return nil, err
	}
	return c.newBody(ctx, op, stop), nil
}

// RetrMany retrieves the messages nums in order and calls fn with each
// message's stream, which is valid only until fn returns (what fn leaves
// unread is discarded). When the server advertised PIPELINING in the last
// Capa, up to Options.PipelineWindow RETR commands are kept in flight;
// otherwise each is sent after the previous reply has been read.
//
// RetrMany stops at the first -ERR reply (returned as a *Error wrapped with
// the command, "pop3: retr 7: ...") or the first error from fn (returned as
// it is), after reading the replies to the commands already sent, so that
// the session stays usable. Messages before the failing one were handed to
// fn in full.
func (c *Client) RetrMany(ctx context.Context, nums []MsgNum, fn func(n MsgNum, r io.Reader) error) error {
	return c.fetchMany(ctx, "retr", nums, 0, fn)
}

// TopMany is RetrMany for TOP n lines.
func (c *Client) TopMany(ctx context.Context, nums []MsgNum, lines int, fn func(n MsgNum, r io.Reader) error) error {
	if lines < 0 {
		return fmt.Errorf("pop3: top: negative line count")
	}
	return c.fetchMany(ctx, "top", nums, lines, fn)
}

func (c *Client) fetchMany(ctx context.Context, verb string, nums []MsgNum, lines int, fn func(n MsgNum, r io.Reader) error) error {
	cmd := func(n MsgNum) (op, line string) {
		if verb == "top" {
			return fmt.Sprintf("top %d %d", n, lines), fmt.Sprintf("TOP %d %d", n, lines)
		}
		return fmt.Sprintf("retr %d", n), fmt.Sprintf("RETR %d", n)
	}
	for _, n := range nums {
		op, _ := cmd(n)
		if err := checkNum(op, n); err != nil {
			return err
		}
	}
	if len(nums) == 0 {
		return nil
	}
	if err := c.begin(ctx, verb); err != nil {
		return err
	}
	stop := c.watch(ctx)
	defer stop()
	window := c.pipelineWindow()

	var (
		sent   int
		failed error
		i      int
	)
	for ; i < len(nums); i++ {
		if err := c.fill(ctx, &sent, i+window, len(nums), func(k int) (string, string) { return cmd(nums[k]) }); err != nil {
			return err
		}
		op, _ := cmd(nums[i])
		if _, err := c.readStatus(ctx, op); err != nil {
			if c.broken != nil {
				return err
			}
			failed = err
			i++
			break
		}
		b := c.newBody(ctx, op, nil)
		ferr := fn(nums[i], b)
		if err := b.Close(); err != nil {
			if ferr != nil {
				return fmt.Errorf("%w (then reading the rest of the message: %v)", ferr, err)
			}
			return err
		}
		if ferr != nil {
			failed = ferr
			i++
			break
		}
	}
	// Read the replies to the commands still in flight.
	for ; i < sent; i++ {
		op, _ := cmd(nums[i])
		if _, err := c.readStatus(ctx, op); err != nil {
			if c.broken != nil {
				return fmt.Errorf("%w (then reading the replies still in flight: %v)", failed, err)
			}
			continue
		}
		if err := c.newBody(ctx, op, nil).Close(); err != nil {
			return fmt.Errorf("%w (then reading the replies still in flight: %v)", failed, err)
		}
	}
	return failed
}

// pipelineWindow is how many commands may be in flight at once.
func (c *Client) pipelineWindow() int {
	if c.caps.Has("PIPELINING") {
		return c.window
	}
	return 1
}

// fill sends commands *sent..upTo-1 (at most total) and flushes them.
func (c *Client) fill(ctx context.Context, sent *int, upTo, total int, cmd func(k int) (op, line string)) error {
	if *sent >= upTo || *sent >= total {
		return nil
	}
	for *sent < upTo && *sent < total {
		op, line := cmd(*sent)
		if err := c.queue(ctx, op, line); err != nil {
			return err
		}
		*sent++
	}
	op, _ := cmd(*sent - 1)
	return c.flush(ctx, op)
}
