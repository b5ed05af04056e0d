// Package crypto wraps age (https://age-encryption.org) for the agent:
// encryption to X25519 recipients (public keys) or with a scrypt passphrase,
// decryption with an identity file or passphrase, and the explicit "none"
// mode. Artifacts are plain age files: the stock age CLI decrypts them.
package crypto

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// Mode is how an artifact is encrypted.
type Mode string

const (
	// ModeX25519 encrypts to age X25519 recipients (public keys).
	ModeX25519 Mode = "x25519"
	// ModeScrypt encrypts with an age scrypt passphrase.
	ModeScrypt Mode = "scrypt"
	// ModeNone stores plaintext; it must be asked for by name.
	ModeNone Mode = "none"
)

// ParseMode parses a mode name. There is no default: an empty name is an error.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case ModeX25519, ModeScrypt, ModeNone:
		return Mode(s), nil
	case "":
		return "", errors.New("no encryption mode given (x25519, scrypt, or none to store plaintext)")
	}
	return "", fmt.Errorf("unknown encryption mode %q (want x25519, scrypt or none)", s)
}

// Ext is the file-name extension the mode adds: ".age" or "".
func (m Mode) Ext() string {
	if m == ModeNone {
		return ""
	}
	return ".age"
}

var (
	// ErrDecryptionFailed means the identity or passphrase does not open the
	// artifact (wrong key, or a key of the wrong kind).
	ErrDecryptionFailed = errors.New("decryption failed")
	// ErrIntegrity means the artifact is damaged or was tampered with: age's
	// authentication of the header or of a payload chunk failed.
	ErrIntegrity = errors.New("integrity check failed")
)

// ScryptWorkFactor is the log2 of the scrypt work factor used when
// encrypting with a passphrase. age's default is 18 (about a second); tests
// lower it.
var ScryptWorkFactor = 18

// FingerprintLen is the number of hex characters of a recipient fingerprint.
const FingerprintLen = 16

// Fingerprint identifies a recipient without repeating it: the first
// FingerprintLen hex characters of the SHA-256 of the recipient string.
func Fingerprint(recipient string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(recipient)))
	return hex.EncodeToString(sum[:])[:FingerprintLen]
}

// ParseRecipients parses recipient strings (age1...), and the contents of
// recipients files (one per line, "#" comments). It returns the parsed
// recipients and their canonical strings.
func ParseRecipients(recipients []string, files ...[]byte) ([]age.Recipient, []string, error) {
	var buf bytes.Buffer
	for _, r := range recipients {
		buf.WriteString(strings.TrimSpace(r))
		buf.WriteByte('\n')
	}
	for _, f := range files {
		buf.Write(f)
		buf.WriteByte('\n')
	}
	if strings.TrimSpace(buf.String()) == "" {
		return nil, nil, errors.New("no recipients given")
	}
	parsed, err := age.ParseRecipients(&buf)
	if err != nil {
		// age never puts the offending line in its error.
		return nil, nil, fmt.Errorf("parsing recipients: %v", err)
	}
	strs := make([]string, 0, len(parsed))
	for _, r := range parsed {
		s, ok := r.(fmt.Stringer)
		if !ok {
			return nil, nil, errors.New("parsing recipients: unsupported recipient type")
		}
		strs = append(strs, s.String())
	}
	return parsed, strs, nil
}

// EncryptOptions says how to encrypt.
type EncryptOptions struct {
	Mode Mode
	// Recipients are age X25519 public keys (ModeX25519).
	Recipients []string
	// RecipientFiles are contents of recipients files (ModeX25519).
	RecipientFiles [][]byte
	// Passphrase is the scrypt passphrase (ModeScrypt). A secret.
	Passphrase string
}

// Fingerprints returns the fingerprints of the recipients, for the manifest.
func (o EncryptOptions) Fingerprints() ([]string, error) {
	if o.Mode != ModeX25519 {
		return nil, nil
	}
	_, strs, err := ParseRecipients(o.Recipients, o.RecipientFiles...)
	if err != nil {
		return nil, err
	}
	fps := make([]string, len(strs))
	for i, s := range strs {
		fps[i] = Fingerprint(s)
	}
	return fps, nil
}

// Validate checks the options without encrypting anything.
func (o EncryptOptions) Validate() error {
	switch o.Mode {
	case ModeX25519:
		if o.Passphrase != "" {
			return errors.New("a passphrase is given but the encryption mode is x25519")
		}
		_, _, err := ParseRecipients(o.Recipients, o.RecipientFiles...)
		return err
	case ModeScrypt:
		if len(o.Recipients) > 0 || len(o.RecipientFiles) > 0 {
			return errors.New("recipients are given but the encryption mode is scrypt")
		}
		if o.Passphrase == "" {
			return errors.New("the encryption mode is scrypt but no passphrase is given")
		}
		return nil
	case ModeNone:
		if len(o.Recipients) > 0 || len(o.RecipientFiles) > 0 || o.Passphrase != "" {
			return errors.New("encryption keys are given but the encryption mode is none")
		}
		return nil
	}
	_, err := ParseMode(string(o.Mode))
	return err
}

// NewEncrypter returns a writer that encrypts to w. Close finishes the age
// file (it does not close w). With ModeNone it passes bytes through.
func NewEncrypter(w io.Writer, o EncryptOptions) (io.WriteCloser, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	switch o.Mode {
	case ModeX25519:
		recs, _, err := ParseRecipients(o.Recipients, o.RecipientFiles...)
		if err != nil {
			return nil, err
		}
		return age.Encrypt(w, recs...)
	case ModeScrypt:
		r, err := age.NewScryptRecipient(o.Passphrase)
		if err != nil {
			return nil, errors.New("invalid passphrase")
		}
		r.SetWorkFactor(ScryptWorkFactor)
		return age.Encrypt(w, r)
	default:
		return nopWriteCloser{w}, nil
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// DecryptOptions holds what can open an artifact. Both are secrets.
type DecryptOptions struct {
	// Identities from an age identity file (AGE-SECRET-KEY-1...).
	Identities []age.Identity
	// Passphrase for scrypt-encrypted artifacts.
	Passphrase string
}

// ParseIdentities parses an age identity file. The error never quotes the file.
func ParseIdentities(data []byte) ([]age.Identity, error) {
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parsing identity file: %v", err)
	}
	return ids, nil
}

const ageMagic = "age-encryption.org/v1\n"
const armorMagic = "-----BEGIN AGE ENCRYPTED FILE-----"

// Detect tells whether r starts like an age file, and whether it is
// passphrase-encrypted. It returns a reader that still yields every byte.
func Detect(r io.Reader) (Mode, io.Reader, error) {
	br := bufio.NewReaderSize(r, 64)
	head, err := br.Peek(64)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return "", br, err
	}
	switch {
	case bytes.HasPrefix(head, []byte(ageMagic+"-> scrypt ")):
		return ModeScrypt, br, nil
	case bytes.HasPrefix(head, []byte(ageMagic)) || bytes.HasPrefix(head, []byte(armorMagic)):
		// Recipient stanzas (or armored, which hides them): age picks the
		// stanza that the given identities open.
		return ModeX25519, br, nil
	}
	return ModeNone, br, nil
}

// NewDecrypter returns a reader of the plaintext of the age file r. With
// ModeNone it returns r. Errors wrap ErrDecryptionFailed when the key does
// not fit, and ErrIntegrity when the file is damaged; reads from the returned
// reader fail with ErrIntegrity on a damaged chunk or a truncated file.
func NewDecrypter(r io.Reader, mode Mode, o DecryptOptions) (io.Reader, error) {
	if mode == ModeNone {
		return r, nil
	}
	var ids []age.Identity
	ids = append(ids, o.Identities...)
	if o.Passphrase != "" {
		id, err := age.NewScryptIdentity(o.Passphrase)
		if err != nil {
			return nil, errors.New("invalid passphrase")
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		switch mode {
		case ModeScrypt:
			return nil, fmt.Errorf("%w: the artifact is passphrase-encrypted but no passphrase is given", ErrDecryptionFailed)
		default:
			return nil, fmt.Errorf("%w: the artifact is encrypted but no identity file is given", ErrDecryptionFailed)
		}
	}
	br := bufio.NewReaderSize(r, 64*1024)
	if head, _ := br.Peek(len(armorMagic)); bytes.Equal(head, []byte(armorMagic)) {
		r = armor.NewReader(br)
	} else {
		r = br
	}
	pr, err := age.Decrypt(r, ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) || errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, fmt.Errorf("%w: no identity or passphrase given opens the artifact", ErrDecryptionFailed)
		}
		return nil, fmt.Errorf("%w: %v", ErrIntegrity, err)
	}
	return &checkedReader{r: pr}, nil
}

// checkedReader maps age payload errors to ErrIntegrity.
type checkedReader struct{ r io.Reader }

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return n, fmt.Errorf("%w: the encrypted file is truncated", ErrIntegrity)
		}
		return n, fmt.Errorf("%w: %v", ErrIntegrity, err)
	}
	return n, err
}
