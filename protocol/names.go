package protocol

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// MaxNameLen is the longest room or participant name.
const MaxNameLen = 64

// NameRule states the rule for names in words a user can act on.
const NameRule = "1 to 64 characters of A-Z a-z 0-9 _ -"

// ErrBadName is returned (wrapped) for any room or participant name that
// breaks NameRule.
var ErrBadName = errors.New("invalid name")

// ValidateName checks that s is a valid room or participant name. what
// says which kind of name it is ("room", "participant") for the message.
// The rule is what makes subject injection impossible: a valid name holds
// no '.', '*', '>' or white space.
func ValidateName(what, s string) error {
	if len(s) == 0 {
		return fmt.Errorf("%w: %s name is empty; use %s", ErrBadName, what, NameRule)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%w: %s name is %d characters long; use %s", ErrBadName, what, len(s), NameRule)
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return fmt.Errorf("%w: %s name %q has %q at position %d; use %s", ErrBadName, what, s, s[i], i+1, NameRule)
		}
	}
	return nil
}

// ValidRoom reports an error when room is not a valid room name.
func ValidRoom(room string) error { return ValidateName("room", room) }

// ValidParticipant reports an error when name is not a valid participant name.
func ValidParticipant(name string) error { return ValidateName("participant", name) }

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// RandomName returns prefix, a dash and eight random hex digits: a valid
// participant name when prefix is a valid name of at most 55 characters.
func RandomName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}
