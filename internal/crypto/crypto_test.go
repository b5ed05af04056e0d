package crypto

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
)

func TestEncryptDecrypt(t *testing.T) {
	ScryptWorkFactor = 10
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	plain := bytes.Repeat([]byte("backstop "), 20000)
	for _, tc := range []struct {
		enc  EncryptOptions
		dec  DecryptOptions
		bad  DecryptOptions
		mode Mode
	}{
		{EncryptOptions{Mode: ModeX25519, Recipients: []string{id.Recipient().String()}}, DecryptOptions{Identities: []age.Identity{id}}, DecryptOptions{Identities: []age.Identity{other}}, ModeX25519},
		{EncryptOptions{Mode: ModeScrypt, Passphrase: "pw-1"}, DecryptOptions{Passphrase: "pw-1"}, DecryptOptions{Passphrase: "pw-2"}, ModeScrypt},
	} {
		var buf bytes.Buffer
		w, err := NewEncrypter(&buf, tc.enc)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plain)
		w.Close()
		ct := buf.Bytes()
		mode, r, _ := Detect(bytes.NewReader(ct))
		if mode != tc.mode {
			t.Errorf("detected %s, want %s", mode, tc.mode)
		}
		pr, err := NewDecrypter(r, mode, tc.dec)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(pr); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("round trip: %v", err)
		}
		if _, err := NewDecrypter(bytes.NewReader(ct), mode, tc.bad); !errors.Is(err, ErrDecryptionFailed) {
			t.Errorf("wrong key: %v", err)
		}
		flipped := bytes.Clone(ct)
		flipped[len(flipped)-10] ^= 1
		pr, err = NewDecrypter(bytes.NewReader(flipped), mode, tc.dec)
		if err == nil {
			_, err = io.ReadAll(pr)
		}
		if !errors.Is(err, ErrIntegrity) {
			t.Errorf("flipped bit: %v", err)
		}
		pr, err = NewDecrypter(bytes.NewReader(ct[:len(ct)-1]), mode, tc.dec)
		if err == nil {
			_, err = io.ReadAll(pr)
		}
		if !errors.Is(err, ErrIntegrity) {
			t.Errorf("truncated: %v", err)
		}
	}
}

func TestValidateAndFingerprint(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	r := id.Recipient().String()
	if err := (EncryptOptions{Mode: ModeX25519, Recipients: []string{id.String()}}).Validate(); err == nil || strings.Contains(err.Error(), id.String()) {
		t.Errorf("a secret key as recipient: %v", err)
	}
	if err := (EncryptOptions{Mode: ModeNone, Passphrase: "x"}).Validate(); err == nil {
		t.Error("none with a passphrase accepted")
	}
	if _, err := ParseMode(""); err == nil {
		t.Error("empty mode accepted")
	}
	fp := Fingerprint(r)
	if len(fp) != FingerprintLen || strings.Contains(r, fp) || Fingerprint(" "+r+"\n") != fp {
		t.Errorf("fingerprint %q", fp)
	}
	fps, err := (EncryptOptions{Mode: ModeX25519, RecipientFiles: [][]byte{[]byte("# team\n" + r + "\n")}}).Fingerprints()
	if err != nil || len(fps) != 1 || fps[0] != fp {
		t.Errorf("fingerprints %v %v", fps, err)
	}
}
