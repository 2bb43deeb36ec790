package config

import (
	"net"
	"net/url"
	"strings"
)

// OAuth2 is an OAuth2 login toward a POP3 host (Microsoft 365, Google):
// access tokens come from a refresh token through the token endpoint and
// are sent with AUTH XOAUTH2 or OAUTHBEARER. The first refresh token is in
// RefreshTokenFile or is stored sealed by `imapbridge oauth2-login`; a
// rotated one is stored sealed in data_dir and used from then on.
type OAuth2 struct {
	// TokenURL is the token endpoint (https; http only to a loopback
	// address).
	TokenURL string `yaml:"token_url"`
	// DeviceAuthURL is the device authorization endpoint (RFC 8628) that
	// oauth2-login uses; optional for polling.
	DeviceAuthURL string `yaml:"device_auth_url"`
	ClientID      string `yaml:"client_id"`
	// ClientSecretFile holds the client secret; none for a public client.
	ClientSecretFile string `yaml:"client_secret_file"`
	// ClientSecret is read from ClientSecretFile.
	ClientSecret Secret `yaml:"-"`
	// RefreshTokenFile holds the first refresh token. It is read at each
	// refresh, not at load: it may be missing until oauth2-login ran.
	RefreshTokenFile string   `yaml:"refresh_token_file"`
	Scopes           []string `yaml:"scopes"`
	// Mechanism is "xoauth2" (default) or "oauthbearer".
	Mechanism string `yaml:"mechanism"`
}

var oauth2Mechanisms = []string{"xoauth2", "oauthbearer"}

// checkOAuth2 checks o, found at key (e.g. users[0].source_oauth2), and
// fills its defaults and paths.
func (p *parser) checkOAuth2(key string, o *OAuth2, secretKeySet bool) {
	if o.TokenURL == "" {
		p.errorf(key+".token_url", "required")
	} else {
		p.endpoint(key+".token_url", o.TokenURL)
	}
	if o.DeviceAuthURL != "" {
		p.endpoint(key+".device_auth_url", o.DeviceAuthURL)
	}
	if o.ClientID == "" {
		p.errorf(key+".client_id", "required")
	}
	if o.Mechanism == "" {
		o.Mechanism = "xoauth2"
	}
	p.oneOf(key+".mechanism", o.Mechanism, oauth2Mechanisms)
	if o.ClientSecretFile != "" {
		o.ClientSecretFile = p.path(o.ClientSecretFile)
		v, err := readSecretFile(o.ClientSecretFile)
		if err != nil {
			p.errorf(key+".client_secret_file", "%v", err)
		} else {
			o.ClientSecret = Secret(v)
		}
	}
	if o.RefreshTokenFile != "" {
		o.RefreshTokenFile = p.path(o.RefreshTokenFile)
	}
	for i, s := range o.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			p.errorf(p.elem(key+".scopes", i), "invalid scope %s (one scope per item, no spaces)", quoteShort(s))
		}
	}
	if !secretKeySet {
		p.errorf(key, "needs secrets.key_file (or $%s): a rotated refresh token is stored sealed with it", envSecretKey)
	}
}

// endpoint checks an OAuth2 endpoint URL: https, or http to loopback.
func (p *parser) endpoint(key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		p.errorf(key, "not an http(s) URL: %s", quoteShort(raw))
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		p.errorf(key, "must be https (http only to a loopback address): %s", quoteShort(raw))
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
