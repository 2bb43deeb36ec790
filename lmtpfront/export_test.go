package lmtpfront

import (
	"context"
	"time"

	"github.com/imapbridge/imapbridge/bridge"
)

// SetDeliver replaces how s stores one copy (a fake, for the outcomes a
// real store cannot be made to give on cue, such as a quota before the
// quota exists) and returns the real one.
func SetDeliver(s *Server, fn func(ctx context.Context, sp *bridge.Spool, u *bridge.User, header []byte, date time.Time) (bridge.UIDValidity, bridge.UID, error)) func(ctx context.Context, sp *bridge.Spool, u *bridge.User, header []byte, date time.Time) (bridge.UIDValidity, bridge.UID, error) {
	old := s.deliver
	s.deliver = fn
	return old
}
