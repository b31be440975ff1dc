package signal

import (
	"crypto/hkdf"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"unicode"
)

// ErrInvalidCode reports an empty or over-long room code.
var ErrInvalidCode = errors.New("signal: invalid room code")

// Protocol constants: both peers must use the same values, so changing any of
// them is a new protocol version.
const (
	// kdfIterations is the PBKDF2-HMAC-SHA256 cost of turning a code into keys.
	// Codes are low-entropy (NewCode: ~26 bits), and the server sees the room
	// ID, so the derivation must be slow to make brute-forcing a code from its
	// room ID expensive: 600,000 iterations (OWASP's 2023 figure) cost ~0.1 s
	// on one core of a 2020s x86 machine, so trying every NewCode code costs
	// ~65 core-days (57.8 million codes) (a GPU is one to two orders of magnitude faster).
	kdfIterations = 600_000
	kdfSalt       = "p2phttp signal v1"
	labelRoomID   = "p2phttp signal v1 room id"
	labelOfferMAC = "p2phttp signal v1 offer mac"
	labelSession  = "p2phttp signal v1 session key"
	maxCodeLen    = 256
)

// KeySize is the size of Meeting.Key in bytes.
const KeySize = 32

// NormalizeCode returns the canonical form of a room code: lower case, with
// runs of spaces, '-', '_' and '.' turned into single '-', so "7 Amber Otter"
// and "7-amber-otter" name the same room.
func NormalizeCode(code string) string {
	fields := strings.FieldsFunc(strings.ToLower(code), func(r rune) bool {
		return unicode.IsSpace(r) || r == '-' || r == '_' || r == '.'
	})
	return strings.Join(fields, "-")
}

// NewCode returns a fresh room code such as "7-amber-otter": a number from 1 to
// 999 and two words from built-in lists, chosen with crypto/rand. That is about
// 26 bits of entropy: enough to keep strangers out of a room for the minutes a
// meeting takes, not enough against a server operator with a GPU farm and
// hours (see kdfIterations); use a longer code of your own where that matters.
func NewCode() string {
	return fmt.Sprintf("%d-%s-%s", 1+randIntn(999), adjectives[randIntn(len(adjectives))], nouns[randIntn(len(nouns))])
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

// secrets are what a code derives.
type secrets struct {
	roomID string // 64 lowercase hex characters; the only thing the server sees
	macKey []byte // authenticates offers
	master []byte // root of the per-meeting session key
}

// sessionKey mixes both peer IDs in, so each meeting of the same code gets its
// own key and a punch packet from an earlier meeting cannot be replayed.
func (s *secrets) sessionKey(a, b string) []byte {
	if b < a {
		a, b = b, a
	}
	return mustExpand(s.master, labelSession+" "+a+" "+b, KeySize)
}

func mustExpand(prk []byte, info string, n int) []byte {
	k, err := hkdf.Expand(sha256.New, prk, info, n)
	if err != nil {
		panic(err) // only for n > 255*32
	}
	return k
}

// deriveCache remembers the last few derivations, so a peer that re-joins the
// same code (p2phttp serve does, once per visitor) pays the slow KDF once, and
// concurrent Joins with one code share one derivation.
var deriveCache = struct {
	sync.Mutex
	m map[string]*derivation
}{m: make(map[string]*derivation)}

const deriveCacheSize = 16

// derivation is one code's secrets, ready once done is closed.
type derivation struct {
	done chan struct{}
	s    *secrets
	err  error
}

// derive turns a code into its secrets (slow: see kdfIterations).
func derive(code string) (*secrets, error) {
	code = NormalizeCode(code)
	if code == "" || len(code) > maxCodeLen {
		return nil, fmt.Errorf("%w: want 1 to %d characters", ErrInvalidCode, maxCodeLen)
	}
	deriveCache.Lock()
	d := deriveCache.m[code]
	if d != nil {
		deriveCache.Unlock()
		<-d.done
		return d.s, d.err
	}
	if len(deriveCache.m) >= deriveCacheSize {
		for k := range deriveCache.m {
			delete(deriveCache.m, k)
			break
		}
	}
	d = &derivation{done: make(chan struct{})}
	deriveCache.m[code] = d
	deriveCache.Unlock()
	defer close(d.done)

	master, err := pbkdf2.Key(sha256.New, code, []byte(kdfSalt), kdfIterations, 32)
	if err != nil {
		d.err = err
		return nil, err
	}
	d.s = &secrets{
		roomID: hex.EncodeToString(mustExpand(master, labelRoomID, 32)),
		macKey: mustExpand(master, labelOfferMAC, 32),
		master: master,
	}
	return d.s, nil
}

// RoomID returns the room ID that code maps to on the server (slow: it runs
// the KDF). Useful to look a room up in server logs or to script the API.
func RoomID(code string) (string, error) {
	s, err := derive(code)
	if err != nil {
		return "", err
	}
	return s.roomID, nil
}
