package imapfront

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/imapbridge/imapbridge/bridge"
)

// ErrAuthFailed is what Options.Authenticate wraps for bad credentials.
var ErrAuthFailed = errors.New("authentication failed")

// errInternal is the one answer to a failure the client cannot do anything
// about; the cause is logged, never shown.
var errInternal = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "internal error"}

// errUnavailable answers a store that cannot take writes now.
var errUnavailable = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Mail store temporarily unavailable"}

const (
	codeUseAttr       imap.ResponseCode = "USEATTR"
	codeExpungeIssued imap.ResponseCode = "EXPUNGEISSUED"
	codeReadOnly      imap.ResponseCode = "READ-ONLY"

	delim = '/'
)

func noErr(code imap.ResponseCode, text string) *imap.Error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
}

func badErr(text string) *imap.Error {
	return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: text}
}

var errReadOnly = noErr(codeReadOnly, "Mailbox is open read-only")

// imapErr turns an error from the bridge into what the client is told. The
// domain's sentinels become their IMAP response codes; anything else is
// logged with the command, user and mailbox and answered with a generic NO.
// dest marks errors about the target of COPY, MOVE or APPEND, where a
// missing mailbox is answered [TRYCREATE].
func (s *session) imapErr(cmd, mailbox string, err error, dest bool) error {
	var ie *imap.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return ie
	case errors.Is(err, bridge.ErrNoSuchMailbox):
		if dest {
			return noErr(imap.ResponseCodeTryCreate, "Mailbox does not exist")
		}
		return noErr(imap.ResponseCodeNonExistent, "Mailbox does not exist")
	case errors.Is(err, bridge.ErrMailboxExists):
		return noErr(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, bridge.ErrInvalidName):
		// The text names what is wrong with the client's own input.
		return noErr(imap.ResponseCodeCannot, capitalize(err.Error()))
	case errors.Is(err, bridge.ErrInvalidSpecialUse):
		return noErr(codeUseAttr, "Unsupported special-use attribute")
	case errors.Is(err, bridge.ErrInboxProtected):
		return noErr(imap.ResponseCodeCannot, "INBOX cannot be deleted")
	case errors.Is(err, bridge.ErrHasChildren):
		return noErr(imap.ResponseCodeHasChildren, "Mailbox has child mailboxes; delete them first")
	case errors.Is(err, bridge.ErrNoSuchMessage):
		return noErr(codeExpungeIssued, "Message has been expunged")
	case errors.As(err, new(*bridge.LimitError)):
		var le *bridge.LimitError
		errors.As(err, &le)
		s.log.Info("imap: "+cmd+": limit reached", "mailbox", mailbox, "limit", le.What, "max", le.Limit)
		return noErr(imap.ResponseCodeLimit, capitalize(le.Error()))
	case errors.As(err, new(*bridge.QuotaError)):
		var qe *bridge.QuotaError
		errors.As(err, &qe)
		return noErr(imap.ResponseCodeOverQuota, capitalize(qe.Error()))
	case errors.Is(err, bridge.ErrTooBig):
		return noErr(imap.ResponseCodeTooBig, "Message too big")
	case errors.Is(err, bridge.ErrStoreClosed), errors.Is(err, bridge.ErrStoreNotWritable):
		s.log.Error("imap: "+cmd+": store unavailable", "mailbox", Clip(mailbox), "err", err)
		return errUnavailable
	case errors.Is(err, context.Canceled) && s.ctx.Err() != nil:
		return noErr(imap.ResponseCodeUnavailable, "Server shutting down")
	}
	s.log.Error("imap: "+cmd+" failed", "mailbox", Clip(mailbox), "err", err)
	return errInternal
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// canonicalName validates a mailbox name from the client (go-imap has
// already decoded modified UTF-7), with a clear NO for a bad one.
func canonicalName(name string) (string, error) {
	cn, err := bridge.CanonicalName(name)
	if err != nil {
		return "", noErr(imap.ResponseCodeCannot, capitalize(err.Error()))
	}
	return cn, nil
}

// checkFlags refuses system flags that do not exist (\Recent is accepted and
// ignored by the bridge) and returns the flags as strings.
func checkFlags(flags []imap.Flag) ([]string, error) {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		fs := string(f)
		if len(fs) > 0 && fs[0] == '\\' && !isSystemFlag(fs) {
			return nil, badErr(fmt.Sprintf("Invalid system flag %s", fs))
		}
		out = append(out, fs)
	}
	return out, nil
}

func isSystemFlag(f string) bool {
	if strings.EqualFold(f, `\Recent`) {
		return true
	}
	for _, sf := range systemFlags {
		if strings.EqualFold(f, string(sf)) {
			return true
		}
	}
	return false
}
