package imapfront

import (
	"bytes"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"
)

var _ imapserver.SessionSASL = (*session)(nil)

// Authenticate implements imapserver.SessionSASL: AUTHENTICATE PLAIN (RFC
// 4616), checked through Login. go-imap's own PLAIN server answers a
// malformed message and any mechanism it does not know with "NO
// [SERVERBUG]"; here they get a NO or BAD that says what was wrong.
func (s *session) Authenticate(mech string) (sasl.Server, error) {
	if s.guard != nil && s.guard.authNeedsTLS() {
		return nil, errPrivacyRequired
	}
	if !strings.EqualFold(mech, sasl.Plain) {
		text := "Unsupported SASL mechanism; this server offers PLAIN"
		if len(mech) <= 20 {
			text = "Unsupported SASL mechanism " + clipText(mech, 20) + "; this server offers PLAIN"
		}
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: text}
	}
	return plainServer{s}, nil
}

// plainServer is a SASL PLAIN server: one message "authzid NUL authcid NUL
// passwd".
type plainServer struct{ s *session }

func (p plainServer) Next(resp []byte) ([]byte, bool, error) {
	if resp == nil {
		return []byte{}, false, nil // ask for the message (no initial response)
	}
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 {
		return nil, false, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
			Text: "Malformed SASL PLAIN message: expected authzid NUL authcid NUL password"}
	}
	identity, username, password := string(parts[0]), string(parts[1]), string(parts[2])
	if username == "" {
		return nil, false, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
			Text: "Malformed SASL PLAIN message: empty user name"}
	}
	if identity != "" && identity != username {
		return nil, false, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed,
			Text: "SASL authorization identity other than the user is not supported"}
	}
	return nil, true, p.s.Login(username, password)
}

// AuthenticateMechanisms implements imapserver.SessionSASL (AUTH=PLAIN).
func (s *session) AuthenticateMechanisms() []string { return []string{sasl.Plain} }
