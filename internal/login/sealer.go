package login

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Sealer encrypts secrets the bridge keeps at rest (a passthrough user's
// source password) with AES-256-GCM under a key derived from
// secrets.key_file / IMAPBRIDGE_SECRET_KEY. The user and secret name are
// bound as additional data, so a sealed value copied to another user or
// source does not open.
type Sealer struct {
	aead cipher.AEAD
}

const sealVersion = 1

// NewSealer derives the sealing key from key (secrets.key_file or
// IMAPBRIDGE_SECRET_KEY); an empty key is an error.
func NewSealer(key string) (*Sealer, error) {
	if key == "" {
		return nil, errors.New("secrets: no key configured")
	}
	k := sha256.Sum256([]byte("imapbridge secrets v1\x00" + key))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext for user's secret name. The result starts with a
// version byte and a random nonce.
func (s *Sealer) Seal(user, name string, plaintext []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	out := append([]byte{sealVersion}, nonce...)
	return s.aead.Seal(out, nonce, plaintext, []byte(user+"\x00"+name))
}

// Open decrypts what Seal made for the same user and name. Its errors are
// one of two fixed texts, which never hold the value or the key.
func (s *Sealer) Open(user, name string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != sealVersion {
		return nil, errors.New("secrets: sealed value malformed")
	}
	pt, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(user+"\x00"+name))
	if err != nil {
		return nil, errors.New("secrets: cannot open sealed value (wrong key, or tampered)")
	}
	return pt, nil
}
