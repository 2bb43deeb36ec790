package pop3

import (
	"context"
	"strings"
)

// Capabilities is a CAPA listing (RFC 2449): capability name (upper-cased)
// to its arguments as sent. A nil Capabilities has nothing.
type Capabilities map[string][]string

// Has reports whether the server listed the capability name.
func (c Capabilities) Has(name string) bool {
	_, ok := c[strings.ToUpper(name)]
	return ok
}

// Args returns the arguments of the capability name.
func (c Capabilities) Args(name string) []string { return c[strings.ToUpper(name)] }

// SASL reports whether the server offers the SASL mechanism mech.
func (c Capabilities) SASL(mech string) bool {
	for _, m := range c.Args("SASL") {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// Capa sends CAPA and remembers the answer for Caps (and for RetrMany's
// choice to pipeline). A server without CAPA answers -ERR: a *Error.
// Capabilities may change after STLS and after login; ask again then.
func (c *Client) Capa(ctx context.Context) (Capabilities, error) {
	if _, err := c.simple(ctx, "capa", "CAPA"); err != nil {
		return nil, err
	}
	caps := Capabilities{}
	err := c.readListing(ctx, "capa", func(line string) error {
		parseCapaLine(caps, line)
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.caps = caps
	return caps, nil
}

// Caps returns the capabilities from the last Capa, or nil if there was
// none since the connection (or TLS) started.
func (c *Client) Caps() Capabilities { return c.caps }
