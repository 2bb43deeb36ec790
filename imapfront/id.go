package imapfront

import (
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"time"
)

// ServerName is what the server calls itself in its ID response (RFC 2971).
const ServerName = "imapbridge"

// ClientID is what a client said about itself with the ID command (RFC
// 2971): the "name" and "version" fields, and every field it sent. Field
// names are lower-cased (they are case-insensitive); a NIL value is "".
type ClientID struct {
	Name, Version string
	Fields        map[string]string
}

// String is the client as a person reads it ("Thunderbird 128.3.0").
func (id ClientID) String() string {
	return strings.TrimSpace(id.Name + " " + id.Version)
}

// serverVersion is the version the ID response names: Options.Version, or
// the main module's version in the build.
func (s *Server) serverVersion() string {
	if s.opts.Version != "" {
		return s.opts.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// answerID parses a whole ID command (cmd, literal data inline) and
// returns the answer and, when the client sent one, its ID.
func answerID(tag string, cmd []byte, sess *session) ([]byte, *ClientID) {
	_, _, rest, _ := parseHead(cmd)
	toks, err := tokens(rest, true)
	const syntax = `Syntax error in ID: expected ("field" "value" ...) or NIL`
	if err != nil || len(toks) == 0 {
		return badLine(tag, syntax), nil
	}
	var id *ClientID
	switch {
	case len(toks) == 1 && toks[0].kind == 'a' && strings.EqualFold(toks[0].val, "NIL"):
	case toks[0].kind == '(' && toks[len(toks)-1].kind == ')':
		pairs := toks[1 : len(toks)-1]
		if len(pairs)%2 != 0 {
			return badLine(tag, syntax), nil
		}
		if len(pairs)/2 > maxIDPairs {
			return badLine(tag, fmt.Sprintf("ID has %d field-value pairs (RFC 2971 allows %d)", len(pairs)/2, maxIDPairs)), nil
		}
		id = &ClientID{Fields: make(map[string]string, len(pairs)/2)}
		for i := 0; i < len(pairs); i += 2 {
			f, v := pairs[i], pairs[i+1]
			if f.kind != 'q' && f.kind != 'l' {
				return badLine(tag, syntax), nil
			}
			switch {
			case v.kind == 'q' || v.kind == 'l':
			case v.kind == 'a' && strings.EqualFold(v.val, "NIL"):
				v.val = ""
			default:
				return badLine(tag, syntax), nil
			}
			if len(f.val) > maxIDField {
				return badLine(tag, fmt.Sprintf("ID field name of %d bytes (RFC 2971 allows %d)", len(f.val), maxIDField)), nil
			}
			if len(v.val) > maxIDValue {
				return badLine(tag, fmt.Sprintf("ID value of %d bytes (RFC 2971 allows %d)", len(v.val), maxIDValue)), nil
			}
			name := strings.ToLower(f.val)
			if _, dup := id.Fields[name]; !dup {
				id.Fields[name] = v.val
			}
		}
		id.Name, id.Version = id.Fields["name"], id.Fields["version"]
	default:
		return badLine(tag, syntax), nil
	}
	version := "dev"
	if sess != nil {
		version = sess.srv.serverVersion()
	}
	return []byte(fmt.Sprintf("* ID (\"name\" %s \"version\" %s)\r\n%s OK ID completed\r\n",
		quoteIMAP(ServerName), quoteIMAP(version), tag)), id
}

// clientIDSeen keeps the client's ID for the session and reports it once
// the session is logged in (ID may come before or after LOGIN). It runs on
// the connection's goroutine, as Login does.
func (s *session) clientIDSeen(id ClientID) {
	s.clientID = &id
	s.log.Info("imap: client id", "client_name", Clip(id.Name), "client_version", Clip(id.Version))
	if s.user != nil {
		s.srv.clientSeen(s.user.Name(), id)
	}
}

func (s *Server) clientSeen(user string, id ClientID) {
	if f := s.opts.ClientSeen; f != nil {
		f(user, id, time.Now())
	}
}

func (s *Server) loggedIn(user string, remote net.Addr) {
	if f := s.opts.LoggedIn; f != nil {
		f(user, remote, time.Now())
	}
}
