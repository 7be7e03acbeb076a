package webtoken

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testKey, _ = NewKey([]byte("0123456789abcdef0123456789abcdef"))

func sign(t testing.TB, c Claims) string {
	t.Helper()
	tok, err := testKey.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(time.Hour).Unix()
	good := sign(t, Claims{Room: "lobby", View: true, Expires: exp})
	otherKey, _ := NewKey([]byte(strings.Repeat("k", 32)))
	foreign, _ := otherKey.Sign(Claims{Room: "lobby", View: true, Expires: exp})
	payload, sig, _ := strings.Cut(good, ".")
	// A payload granting more, carrying good's signature.
	forged, _ := testKey.Sign(Claims{Room: "*", View: true, Publish: true, Expires: exp})
	forgedPayload, _, _ := strings.Cut(forged, ".")
	flip := []byte(sig)
	flip[3] = map[bool]byte{true: 'B', false: 'A'}[flip[3] == 'A']
	for _, tc := range []struct {
		name string
		tok  string
		want error
	}{
		{"good", good, nil},
		{"missing", "", ErrMissing},
		{"expired", sign(t, Claims{Room: "lobby", View: true, Expires: now.Unix()}), ErrExpired},
		{"other key", foreign, ErrBadSignature},
		{"swapped payload", forgedPayload + "." + sig, ErrBadSignature},
		{"flipped signature bit", payload + "." + string(flip), ErrBadSignature},
		{"no signature", payload, ErrMalformed},
		{"empty signature", payload + ".", ErrMalformed},
		{"short signature", payload + "." + sig[:20], ErrMalformed},
		{"three parts", good + ".x", ErrMalformed},
		{"garbage", "not a token", ErrMalformed},
		{"too long", strings.Repeat("a", MaxLen+1), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := testKey.Verify(tc.tok, now)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tc.want)
			}
			if err == nil && (c.Room != "lobby" || !c.View || c.Publish || c.Expires != exp) {
				t.Errorf("claims = %+v", c)
			}
		})
	}
}

// TestSignedGarbage: a correctly signed payload that is not valid claims
// is still refused (a key holder's mistake must not grant anything).
func TestSignedGarbage(t *testing.T) {
	for _, p := range []string{`{}`, `{"room":"a.b","view":true,"exp":9999999999}`, `{"room":"a","exp":9999999999}`,
		`{"room":"a","view":true}`, `{"room":"a","view":true,"exp":9999999999,"admin":true}`, `{"room":"a","view":true,"exp":9999999999}{}`,
		`{"room":"a","view":true,"exp":9999999999,"name":"x y"}`, `[]`, `null`} {
		payload := b64.EncodeToString([]byte(p))
		tok := payload + "." + b64.EncodeToString(testKey.mac(payload))
		if c, err := testKey.Verify(tok, time.Now()); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Verify = %+v, %v; want ErrMalformed", p, c, err)
		}
	}
}

func TestRights(t *testing.T) {
	c := Claims{Room: "lobby", View: true, Publish: true, Name: "ann"}
	for _, tc := range []struct {
		err, want error
	}{
		{c.CanView("lobby"), nil},
		{c.CanView("hall"), ErrWrongRoom},
		{c.CanPublish("lobby", "ann"), nil},
		{c.CanPublish("lobby", "bob"), ErrWrongName},
		{c.CanPublish("hall", "ann"), ErrWrongRoom},
		{Claims{Room: "lobby", View: true}.CanPublish("lobby", "ann"), ErrNoRight},
		{Claims{Room: "lobby", Publish: true}.CanView("lobby"), ErrNoRight},
		{Claims{Room: "*", View: true}.CanView("any"), nil},
		{Claims{Room: "*", Publish: true}.CanPublish("any", "who"), nil},
		// Replaying is a right of its own: viewing does not give it, nor
		// it viewing.
		{c.CanReplay("lobby"), ErrNoRight},
		{Claims{Room: "lobby", Replay: true}.CanReplay("lobby"), nil},
		{Claims{Room: "lobby", Replay: true}.CanReplay("hall"), ErrWrongRoom},
		{Claims{Room: "lobby", Replay: true}.CanView("lobby"), ErrNoRight},
		{Claims{Room: "*", Replay: true}.CanReplay("any"), nil},
	} {
		if !errors.Is(tc.err, tc.want) || (tc.want == nil) != (tc.err == nil) {
			t.Errorf("got %v, want %v", tc.err, tc.want)
		}
	}
}

// TestReplayClaim: a replay-only token is a token, and its right
// survives signing and verifying; an old token without the claim grants
// no replay.
func TestReplayClaim(t *testing.T) {
	tok, err := testKey.Sign(Claims{Room: "lobby", Replay: true, Expires: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := testKey.Verify(tok, time.Now())
	if err != nil || c.CanReplay("lobby") != nil || c.CanView("lobby") == nil {
		t.Errorf("replay-only token: %+v, %v", c, err)
	}
	tok, _ = testKey.Sign(Claims{Room: "lobby", View: true, Expires: time.Now().Add(time.Hour).Unix()})
	payload, _, _ := strings.Cut(tok, ".")
	if b, _ := b64.DecodeString(payload); strings.Contains(string(b), "replay") {
		t.Errorf("a token without replay says %s", b)
	}
	if c, err := testKey.Verify(tok, time.Now()); err != nil || !errors.Is(c.CanReplay("lobby"), ErrNoRight) {
		t.Errorf("view-only token: %+v, %v, replay %v", c, err, c.CanReplay("lobby"))
	}
}

func TestSignRefuses(t *testing.T) {
	for _, c := range []Claims{
		{Room: "a.b", View: true, Expires: 1},
		{Room: "", View: true, Expires: 1},
		{Room: "a", Expires: 1},
		{Room: "a", View: true},
		{Room: "a", Publish: true, Name: "*", Expires: 1},
	} {
		if _, err := testKey.Sign(c); !errors.Is(err, ErrBadClaims) {
			t.Errorf("Sign(%+v) = %v, want ErrBadClaims", c, err)
		}
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token.key")
	if err := NewKeyFile(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	if err := NewKeyFile(path); !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second NewKeyFile = %v, want a refusal to overwrite", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("the key file changed")
	}
	k, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k.Sign(Claims{Room: "r", View: true, Expires: time.Now().Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Verify(tok, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := testKey.Verify(tok, time.Now()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another key verified it: %v", err)
	}
	short := filepath.Join(t.TempDir(), "short.key")
	_ = os.WriteFile(short, []byte("too short\n"), 0o600)
	if _, err := LoadKeyFile(short); !errors.Is(err, ErrBadKey) {
		t.Errorf("short key: %v", err)
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "none")); !errors.Is(err, ErrBadKey) {
		t.Errorf("missing key: %v", err)
	}
}

func TestID(t *testing.T) {
	tok := sign(t, Claims{Room: "lobby", View: true, Expires: 9999999999})
	id := ID(tok)
	if len(id) != 8 || strings.Contains(tok, id) || ID(tok+"x") == id {
		t.Errorf("ID = %q", id)
	}
}

// FuzzVerify feeds arbitrary text to the decoder: it never panics, and
// nothing but the key's own tokens verifies.
func FuzzVerify(f *testing.F) {
	f.Add(sign(f, Claims{Room: "lobby", View: true, Publish: true, Name: "ann", Expires: 9999999999}))
	f.Add("a.b")
	f.Add(".")
	f.Add("eyJ9.AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := testKey.Verify(tok, time.Unix(1_800_000_000, 0))
		if err != nil {
			return
		}
		if err := c.check(); err != nil {
			t.Fatalf("verified claims %+v are invalid: %v", c, err)
		}
	})
}

// FuzzClaims signs arbitrary payload bytes, so the fuzzer reaches the
// claims decoder behind the signature check: it never panics and only
// valid claims come out.
func FuzzClaims(f *testing.F) {
	f.Add([]byte(`{"room":"lobby","view":true,"exp":9999999999}`))
	f.Add([]byte(`{"room":"*","publish":true,"name":"ann","exp":1}`))
	f.Add([]byte(`{"room":"lobby","view":true,"exp":1e99}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		payload := b64.EncodeToString(p)
		tok := payload + "." + b64.EncodeToString(testKey.mac(payload))
		c, err := testKey.Verify(tok, time.Unix(0, 0))
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrExpired) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if err := c.check(); err != nil {
			t.Fatalf("verified claims %+v are invalid: %v", c, err)
		}
		again, err := testKey.Sign(c)
		if err != nil {
			t.Fatalf("re-signing %+v: %v", c, err)
		}
		c2, err := testKey.Verify(again, time.Unix(0, 0))
		if c.Issued == 0 {
			c2.Issued = 0 // Sign stamped it
		}
		if err != nil || c2 != c {
			t.Fatalf("round trip: %+v %v, want %+v", c2, err, c)
		}
	})
}
