package signal

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode"
)

// ErrInvalidCode reports a code that does not have the form NAMEPLATE-WORDS (see ParseCode); the wrapping error
// says what is wrong with it.
var ErrInvalidCode = errors.New("signal: invalid code")

// Limits of a code.
const (
	MaxNameplate   = 99999 // nameplates are 1..MaxNameplate
	maxSecretBytes = 256   // the secret words, normalised
)

// Code is a meeting code such as "7-amber-otter": a nameplate, which names the meeting place on the signalling
// server and is all the server ever sees, and the secret words, the password of the PAKE that the two peers run
// through the server. The zero Code is not valid.
type Code struct {
	Nameplate int    // 1..MaxNameplate
	Secret    string // the normalised secret words joined by "-", e.g. "amber-otter"
}

// String is the canonical form, e.g. "7-amber-otter".
func (c Code) String() string {
	if c.Nameplate == 0 {
		return ""
	}
	return strconv.Itoa(c.Nameplate) + "-" + c.Secret
}

// NameplateString is the nameplate as it appears in URLs of the signalling API.
func (c Code) NameplateString() string { return strconv.Itoa(c.Nameplate) }

// NormalizeCode returns the canonical spelling of a code: lower case, with runs of spaces, '-', '_' and '.' turned
// into single '-', so "7 Amber Otter" and "7-amber-otter" are the same code. It does not check the form (ParseCode
// does).
func NormalizeCode(code string) string {
	fields := strings.FieldsFunc(strings.ToLower(code), func(r rune) bool {
		return unicode.IsSpace(r) || r == '-' || r == '_' || r == '.'
	})
	return strings.Join(fields, "-")
}

// ParseCode parses and normalises a code: a nameplate (a decimal number from 1 to MaxNameplate, without leading
// zeros) and at least one secret word, as NewCode makes them ("7-amber-otter") or as a person chose them
// ("12-correct-horse-battery"). Errors wrap ErrInvalidCode and say what is wrong.
func ParseCode(s string) (Code, error) {
	norm := NormalizeCode(s)
	if norm == "" {
		return Code{}, fmt.Errorf("%w: empty; a code looks like 7-amber-otter", ErrInvalidCode)
	}
	plate, secret, _ := strings.Cut(norm, "-")
	n, err := strconv.Atoi(plate)
	switch {
	case err != nil || strings.TrimLeft(plate, "0123456789") != "":
		return Code{}, fmt.Errorf("%w: %q does not start with a nameplate (a number, as the 7 of 7-amber-otter)", ErrInvalidCode, s)
	case plate[0] == '0':
		return Code{}, fmt.Errorf("%w: nameplate %q has a leading zero (want 1 to %d)", ErrInvalidCode, plate, MaxNameplate)
	case n < 1 || n > MaxNameplate:
		return Code{}, fmt.Errorf("%w: nameplate %s is out of range (want 1 to %d)", ErrInvalidCode, plate, MaxNameplate)
	case secret == "":
		return Code{}, fmt.Errorf("%w: %q has no secret words after the nameplate (want e.g. %d-amber-otter)", ErrInvalidCode, s, n)
	case len(secret) > maxSecretBytes:
		return Code{}, fmt.Errorf("%w: the secret words are longer than %d bytes", ErrInvalidCode, maxSecretBytes)
	}
	return Code{Nameplate: n, Secret: secret}, nil
}

// NewCode returns a fresh code such as "7-amber-otter": a nameplate from 1 to 999 and two words from built-in lists
// (about 16 bits of secret), chosen with crypto/rand. The words need not be strong: a guess can only be checked by
// taking part in a meeting with the host, which retires the code after a few failures.
func NewCode() string { return newCode(999, 0).String() }

// newCode makes a code whose nameplate is at most maxPlate, with extra adjectives (8 bits each) before the usual two
// words.
func newCode(maxPlate, extra int) Code {
	var words []string
	for range extra {
		words = append(words, adjectives[randIntn(len(adjectives))])
	}
	words = append(words, adjectives[randIntn(len(adjectives))], nouns[randIntn(len(nouns))])
	return Code{Nameplate: 1 + randIntn(min(maxPlate, MaxNameplate)), Secret: strings.Join(words, "-")}
}

// CodeWords returns copies of the word lists NewCode picks from: the first word of a code (an adjective) and the
// second (a noun). User interfaces use them to complete a code as it is typed and to suggest a correction for a
// mistyped word; a code of the user's own may hold any words.
func CodeWords() (first, second []string) {
	return append([]string(nil), adjectives[:]...), append([]string(nil), nouns[:]...)
}

func randIntn(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return int(v.Int64())
}
