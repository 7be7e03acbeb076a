// Package webtoken makes and checks vidhub's room tokens: signed,
// expiring grants that let a browser view, publish in, and replay the
// recording of a room of the web gateway.
//
// A token is two base64url (unpadded) parts joined by a dot:
//
//	base64url(JSON claims) "." base64url(HMAC-SHA256(key, "vidhub-token-v1." + first part))
//
// with claims like {"room":"lobby","view":true,"publish":true,"replay":true,
// "name":"ann","exp":1764000000,"iat":1763913600} (room "*" means every
// room, name "" any participant name, exp and iat in Unix seconds; a
// right left out is not granted). The key is the
// content of a key file of at least 32 bytes (NewKeyFile writes 32
// random bytes, hex-encoded). Whoever holds the key can mint tokens;
// whoever holds a token has its rights until it expires, so tokens travel
// only over HTTPS and are never logged (ID gives a short, non-reversible
// name for logs).
package webtoken

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/vidhub/vidhub/protocol"
)

// AnyRoom in Claims.Room grants the rights in every room.
const AnyRoom = "*"

// MinKeyLen is the shortest key, in bytes, a key file may hold.
const MinKeyLen = 32

// MaxLen bounds a token's length: anything longer is not one of ours.
const MaxLen = 1024

// sigContext binds a signature to this format and version.
const sigContext = "vidhub-token-v1."

// b64 is strict: the unused low bits of a last character must be zero,
// so that one token has one spelling (a lenient decoder takes four
// spellings of the same signature).
var b64 = base64.RawURLEncoding.Strict()

// Errors of tokens and keys. Every refusal wraps one of them.
var (
	// ErrMissing: no token was presented.
	ErrMissing = errors.New("no room token")
	// ErrMalformed: the text is not a vidhub token.
	ErrMalformed = errors.New("malformed room token")
	// ErrBadSignature: the token was not signed with this gateway's key
	// (tampered with, or made for another gateway).
	ErrBadSignature = errors.New("room token signature does not match")
	// ErrExpired: the token's time is up.
	ErrExpired = errors.New("room token expired")
	// ErrWrongRoom: the token is for another room.
	ErrWrongRoom = errors.New("room token is for another room")
	// ErrNoRight: the token does not grant viewing, publishing or
	// replaying.
	ErrNoRight = errors.New("room token does not allow this")
	// ErrWrongName: the token lets its holder publish under another name.
	ErrWrongName = errors.New("room token is for another participant name")
	// ErrBadKey: the key file is missing, too short or would be overwritten.
	ErrBadKey = errors.New("bad token key")
	// ErrBadClaims: the claims given to Sign cannot make a useful token.
	ErrBadClaims = errors.New("bad token claims")
)

// Claims are what a token grants.
type Claims struct {
	// Room is the room the token is for, or AnyRoom.
	Room string `json:"room"`
	// View allows watching the room.
	View bool `json:"view,omitempty"`
	// Publish allows publishing into the room.
	Publish bool `json:"publish,omitempty"`
	// Replay allows watching the room's recording (the room page's
	// timeline): a right apart from View, as in the access file.
	Replay bool `json:"replay,omitempty"`
	// Name, when set, is the only participant name the holder may
	// publish under.
	Name string `json:"name,omitempty"`
	// Expires is when the token stops working, in Unix seconds.
	Expires int64 `json:"exp"`
	// Issued is when the token was made, in Unix seconds.
	Issued int64 `json:"iat,omitempty"`
}

// check validates the claims' fields (not the time).
func (c Claims) check() error {
	if c.Room != AnyRoom {
		if err := protocol.ValidRoom(c.Room); err != nil {
			return err
		}
	}
	if c.Name != "" {
		if err := protocol.ValidParticipant(c.Name); err != nil {
			return err
		}
	}
	if c.Expires <= 0 {
		return errors.New("no expiry")
	}
	if !c.View && !c.Publish && !c.Replay {
		return errors.New("grants neither view, publish nor replay")
	}
	return nil
}

// ExpiresAt is Expires as a time.
func (c Claims) ExpiresAt() time.Time { return time.Unix(c.Expires, 0) }

// Covers reports whether the token is for room (or for every room).
func (c Claims) Covers(room string) bool { return c.Room == AnyRoom || c.Room == room }

// CanView returns nil when the token lets its holder watch room.
func (c Claims) CanView(room string) error {
	if !c.Covers(room) {
		return fmt.Errorf("%w: it is for room %s, not %s", ErrWrongRoom, c.Room, room)
	}
	if !c.View {
		return fmt.Errorf("%w: it does not allow viewing room %s", ErrNoRight, room)
	}
	return nil
}

// CanReplay returns nil when the token lets its holder watch the
// recording of room.
func (c Claims) CanReplay(room string) error {
	if !c.Covers(room) {
		return fmt.Errorf("%w: it is for room %s, not %s", ErrWrongRoom, c.Room, room)
	}
	if !c.Replay {
		return fmt.Errorf("%w: it does not allow replaying room %s", ErrNoRight, room)
	}
	return nil
}

// CanPublish returns nil when the token lets its holder publish into room
// as participant name.
func (c Claims) CanPublish(room, name string) error {
	if !c.Covers(room) {
		return fmt.Errorf("%w: it is for room %s, not %s", ErrWrongRoom, c.Room, room)
	}
	if !c.Publish {
		return fmt.Errorf("%w: it does not allow publishing into room %s", ErrNoRight, room)
	}
	if c.Name != "" && name != c.Name {
		return fmt.Errorf("%w: it allows publishing only as %s, not %s", ErrWrongName, c.Name, name)
	}
	return nil
}

// Key signs and verifies tokens.
type Key struct {
	k []byte
}

// NewKey makes a key of raw bytes, at least MinKeyLen of them.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) < MinKeyLen {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d (vidhub token --new-key FILE writes one)", ErrBadKey, len(raw), MinKeyLen)
	}
	return &Key{k: bytes.Clone(raw)}, nil
}

// LoadKeyFile reads a key file. Trailing white space (a final newline)
// is not part of the key.
func LoadKeyFile(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	k, err := NewKey(bytes.TrimRight(b, " \t\r\n"))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// NewKeyFile writes a new random key (32 bytes, hex-encoded) to path,
// readable by its owner only. It refuses to overwrite a file: that would
// invalidate every token made with the old key.
func NewKeyFile(path string) error {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // never fails (crypto/rand)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s exists; remove it first if you mean to replace the key (every token made with it stops working)", ErrBadKey, path)
		}
		return fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	_, err = fmt.Fprintln(f, hex.EncodeToString(raw))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("%w: writing %s: %w", ErrBadKey, path, err)
	}
	return nil
}

func (k *Key) mac(payload string) []byte {
	h := hmac.New(sha256.New, k.k)
	h.Write([]byte(sigContext))
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// Sign makes a token of c. Issued is set to now when zero.
func (k *Key) Sign(c Claims) (string, error) {
	if c.Issued == 0 {
		c.Issued = time.Now().Unix()
	}
	if err := c.check(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadClaims, err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadClaims, err)
	}
	payload := b64.EncodeToString(b)
	return payload + "." + b64.EncodeToString(k.mac(payload)), nil
}

// Verify checks a token's form, signature and expiry at now and returns
// its claims.
func (k *Key) Verify(tok string, now time.Time) (Claims, error) {
	if tok == "" {
		return Claims{}, ErrMissing
	}
	c, err := k.decode(tok)
	if err != nil {
		return Claims{}, err
	}
	if now.Unix() >= c.Expires {
		return Claims{}, fmt.Errorf("%w at %s; ask for a new link", ErrExpired, c.ExpiresAt().UTC().Format(time.RFC3339))
	}
	return c, nil
}

// decode checks everything but the time.
func (k *Key) decode(tok string) (Claims, error) {
	if len(tok) > MaxLen {
		return Claims{}, fmt.Errorf("%w: longer than %d characters", ErrMalformed, MaxLen)
	}
	payload, sig, ok := strings.Cut(tok, ".")
	if !ok || payload == "" || sig == "" {
		return Claims{}, fmt.Errorf("%w: want two parts separated by a dot", ErrMalformed)
	}
	got, err := b64.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return Claims{}, fmt.Errorf("%w: bad signature encoding", ErrMalformed)
	}
	// The signature is checked before the claims are even parsed: nothing
	// from an unsigned token reaches the JSON decoder.
	if !hmac.Equal(got, k.mac(payload)) {
		return Claims{}, ErrBadSignature
	}
	b, err := b64.DecodeString(payload)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: bad claims encoding", ErrMalformed)
	}
	var c Claims
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return Claims{}, fmt.Errorf("%w: bad claims", ErrMalformed)
	}
	if err := c.check(); err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return c, nil
}

// ID is a short name for a token in logs: the first 8 hex digits of its
// SHA-256. It tells two tokens apart without revealing either.
func ID(tok string) string {
	if tok == "" {
		return ""
	}
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:4])
}
