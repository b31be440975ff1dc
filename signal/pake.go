package signal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/schollz/pake/v3"
)

// The meeting's four messages, all relayed by the server as opaque bytes:
//
//	guest -> host  msg0: version byte, PAKE message A
//	host  -> guest msg0: PAKE message B, host confirmation (HMAC over the transcript)
//	guest -> host  msg1: guest confirmation, sealed guest candidates and cipher offer
//	host  -> guest msg1: sealed host candidates and cipher offer (sent only once the guest's confirmation verified)
//
// The transcript hash binds the version, nameplate, meeting ID and both PAKE messages, so a message moved to another
// meeting, or altered on the way, fails confirmation. The sealed parts are AES-GCM under a key derived from the
// session key and the transcript: altered, they do not open.

// wireVersion is the first byte of the guest's first message.
const wireVersion = 2

// pakeCurve is the curve of the PAKE: NIST P-256, whose arithmetic is Go's own constant-time crypto/elliptic.
const pakeCurve = "p256"

// PAKE roles as schollz/pake numbers them: the guest starts.
const (
	pakeGuest = 0
	pakeHost  = 1
)

// Labels of the keys derived from the PAKE's session key; changing one is a new protocol version.
const (
	labelPassword   = "p2phttp v2 password"
	labelTranscript = "p2phttp v2 transcript"
	labelConfirm    = "p2phttp v2 confirm"
	labelCandidates = "p2phttp v2 candidates"
	labelPath       = "p2phttp v2 path"
	labelVerifier   = "p2phttp v2 verifier"
)

// KeySize is the size of Meeting.Key in bytes.
const KeySize = 32

// macSize is the size of a confirmation.
const macSize = sha256.Size

// Errors of a meeting, matchable with errors.Is.
var (
	// ErrConfirmFailed: the other side's key confirmation did not verify. Either the two sides used different
	// codes, or something between them (the signalling server, say) altered the messages.
	ErrConfirmFailed = errors.New("signal: key confirmation failed: wrong code, or the messages were altered")
	// ErrBadMessage: a meeting message is malformed (truncated, oversized, not what this step expects).
	ErrBadMessage = errors.New("signal: malformed meeting message")
)

// handshake is one side of the PAKE exchange of one meeting.
type handshake struct {
	code     Code
	meeting  string
	pake     *pake.Pake
	msgA     []byte // the guest's PAKE message
	msgB     []byte // the host's PAKE message
	keys     meetingKeys
	complete bool // keys are set
}

// meetingKeys are what the PAKE's session key derives, per meeting.
type meetingKeys struct {
	confirm    []byte
	candidates []byte
	path       []byte
	verifier   string
}

// password binds the nameplate and the secret words. It is hashed so every code gives a full-size scalar.
func password(c Code) []byte {
	h := sha256.New()
	writeField(h, labelPassword)
	writeField(h, c.NameplateString())
	writeField(h, c.Secret)
	return h.Sum(nil)
}

type byteWriter interface{ Write([]byte) (int, error) }

// writeField writes s length-prefixed, so that no two sequences of fields hash alike.
func writeField(w byteWriter, s string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	w.Write(n[:])
	w.Write([]byte(s))
}

// newGuestHandshake starts the guest's side and returns its first message.
func newGuestHandshake(code Code, meeting string) (*handshake, []byte, error) {
	p, err := pake.InitCurve(password(code), pakeGuest, pakeCurve)
	if err != nil {
		return nil, nil, fmt.Errorf("signal: PAKE: %w", err)
	}
	hs := &handshake{code: code, meeting: meeting, pake: p, msgA: p.Bytes()}
	return hs, append([]byte{wireVersion}, hs.msgA...), nil
}

// newHostHandshake answers a guest's first message: it returns the host's first message, which carries the host's
// confirmation. A message that is not a guest's PAKE message of this version is ErrBadMessage.
func newHostHandshake(code Code, meeting string, guestMsg0 []byte) (*handshake, []byte, error) {
	if len(guestMsg0) < 2 || guestMsg0[0] != wireVersion {
		return nil, nil, fmt.Errorf("%w: the guest's first message is not version %d", ErrBadMessage, wireVersion)
	}
	p, err := pake.InitCurve(password(code), pakeHost, pakeCurve)
	if err != nil {
		return nil, nil, fmt.Errorf("signal: PAKE: %w", err)
	}
	hs := &handshake{code: code, meeting: meeting, pake: p, msgA: guestMsg0[1:]}
	if err := pakeUpdate(p, hs.msgA, pakeGuest); err != nil {
		return nil, nil, err
	}
	hs.msgB = p.Bytes()
	if err := hs.derive(); err != nil {
		return nil, nil, err
	}
	return hs, append(append([]byte(nil), hs.msgB...), hs.confirmation("host")...), nil
}

// guestConfirm checks the host's first message and returns the guest's second: its confirmation, then its
// candidates and cipher offer, sealed. A host confirmation that does not verify is ErrConfirmFailed.
func (hs *handshake) guestConfirm(hostMsg0 []byte, candidates []Candidate, ciphers []string) ([]byte, error) {
	if len(hostMsg0) <= macSize {
		return nil, fmt.Errorf("%w: the host's first message is %d bytes", ErrBadMessage, len(hostMsg0))
	}
	hs.msgB = hostMsg0[:len(hostMsg0)-macSize]
	if err := pakeUpdate(hs.pake, hs.msgB, pakeHost); err != nil {
		return nil, err
	}
	if err := hs.derive(); err != nil {
		return nil, err
	}
	if !hmac.Equal(hostMsg0[len(hostMsg0)-macSize:], hs.confirmation("host")) {
		return nil, ErrConfirmFailed
	}
	sealed, err := hs.seal("guest", candidates, ciphers)
	if err != nil {
		return nil, err
	}
	return append(hs.confirmation("guest"), sealed...), nil
}

// hostConfirm checks the guest's second message (ErrConfirmFailed when its confirmation does not verify) and
// returns what the guest sent (its candidates and cipher offer, nil for a guest that made none) and the host's
// second message: its own candidates and cipher offer, sealed.
func (hs *handshake) hostConfirm(guestMsg1 []byte, candidates []Candidate, ciphers []string) (peer sealedMessage, msg1 []byte, err error) {
	if len(guestMsg1) < macSize {
		return sealedMessage{}, nil, fmt.Errorf("%w: the guest's second message is %d bytes", ErrBadMessage, len(guestMsg1))
	}
	if !hmac.Equal(guestMsg1[:macSize], hs.confirmation("guest")) {
		return sealedMessage{}, nil, ErrConfirmFailed
	}
	if peer, err = hs.open("guest", guestMsg1[macSize:]); err != nil {
		return sealedMessage{}, nil, err
	}
	msg1, err = hs.seal("host", candidates, ciphers)
	return peer, msg1, err
}

// guestOpen reads the host's second message: its candidates and cipher offer.
func (hs *handshake) guestOpen(hostMsg1 []byte) (sealedMessage, error) {
	return hs.open("host", hostMsg1)
}

// pakeUpdate feeds the other side's PAKE message to p. The message is checked first: schollz/pake hands its points
// to crypto/elliptic, which panics on a missing coordinate, and these bytes come from the network.
func pakeUpdate(p *pake.Pake, msg []byte, wantRole int) (err error) {
	var m struct {
		Role *int     `json:"Role"`
		Xu   *big.Int `json:"Xᵤ"`
		Xv   *big.Int `json:"Xᵥ"`
		Yu   *big.Int `json:"Yᵤ"`
		Yv   *big.Int `json:"Yᵥ"`
	}
	if json.Unmarshal(msg, &m) != nil || m.Role == nil || *m.Role != wantRole {
		return fmt.Errorf("%w: not a PAKE message of the other role", ErrBadMessage)
	}
	if wantRole == pakeGuest && (m.Xu == nil || m.Xv == nil) || wantRole == pakeHost && (m.Yu == nil || m.Yv == nil) {
		return fmt.Errorf("%w: PAKE message without its point", ErrBadMessage)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: PAKE rejected the message: %v", ErrBadMessage, r)
		}
	}()
	if err := p.Update(msg); err != nil {
		return fmt.Errorf("%w: PAKE: %v", ErrBadMessage, err)
	}
	return nil
}

// derive turns the PAKE's session key into the meeting's keys, bound to the transcript.
func (hs *handshake) derive() error {
	k, err := hs.pake.SessionKey()
	if err != nil {
		return fmt.Errorf("signal: PAKE: %w", err)
	}
	th := sha256.New()
	writeField(th, labelTranscript)
	writeField(th, strconv.Itoa(wireVersion))
	writeField(th, hs.code.NameplateString())
	writeField(th, hs.meeting)
	writeField(th, string(hs.msgA))
	writeField(th, string(hs.msgB))
	transcript := th.Sum(nil)
	expand := func(label string, n int) []byte {
		info := label + "\x00" + hs.meeting + "\x00" + string(transcript)
		out, err := hkdf.Key(sha256.New, k, nil, info, n)
		if err != nil {
			panic(err) // only for n > 255*32
		}
		return out
	}
	hs.keys = meetingKeys{
		confirm:    expand(labelConfirm, 32),
		candidates: expand(labelCandidates, 32),
		path:       expand(labelPath, KeySize),
		verifier:   verifierWords(expand(labelVerifier, 8*verifierWordCount)),
	}
	hs.complete = true
	return nil
}

// confirmation proves knowledge of the session key: HMAC(confirm key, side).
func (hs *handshake) confirmation(side string) []byte {
	m := hmac.New(sha256.New, hs.keys.confirm)
	m.Write([]byte(side))
	return m.Sum(nil)
}

// sealedMessage is what the sealed part of the second messages holds. Ciphers, best first, is absent from the
// messages of peers older than cipher negotiation.
type sealedMessage struct {
	Candidates []Candidate `json:"candidates"`
	Ciphers    []string    `json:"ciphers,omitempty"`
}

// nonce of each direction: the candidates key seals exactly one message each way, so fixed nonces never repeat.
func nonce(side string) []byte {
	n := make([]byte, 12)
	if side == "host" {
		n[11] = 2
	} else {
		n[11] = 1
	}
	return n
}

func (hs *handshake) aead() cipher.AEAD {
	block, err := aes.NewCipher(hs.keys.candidates)
	if err != nil {
		panic(err) // the key is always 32 bytes
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return g
}

func (hs *handshake) seal(side string, cands []Candidate, ciphers []string) ([]byte, error) {
	if err := validateCandidates(cands, DefaultMaxCandidates); err != nil {
		return nil, fmt.Errorf("our candidates: %w", err)
	}
	if err := validateCiphers(ciphers); err != nil {
		return nil, fmt.Errorf("our ciphers: %w", err)
	}
	plain, err := json.Marshal(sealedMessage{Candidates: cands, Ciphers: ciphers})
	if err != nil {
		return nil, err
	}
	return hs.aead().Seal(nil, nonce(side), plain, []byte(side)), nil
}

func (hs *handshake) open(side string, sealed []byte) (sealedMessage, error) {
	plain, err := hs.aead().Open(nil, nonce(side), sealed, []byte(side))
	if err != nil {
		return sealedMessage{}, fmt.Errorf("%w: the %s's candidates do not decrypt", ErrConfirmFailed, side)
	}
	var m sealedMessage
	if err := json.Unmarshal(plain, &m); err != nil {
		return sealedMessage{}, fmt.Errorf("%w: the %s's candidates: %s", ErrBadMessage, side, jsonErrorText(err))
	}
	if err := validateCandidates(m.Candidates, DefaultMaxCandidates); err != nil {
		return sealedMessage{}, fmt.Errorf("the %s's candidates: %w", side, err)
	}
	if m.Ciphers != nil { // absent: a peer older than cipher negotiation, which chooseCipher reports
		if err := validateCiphers(m.Ciphers); err != nil {
			return sealedMessage{}, fmt.Errorf("%w: the %s's ciphers: %v", ErrBadMessage, side, err)
		}
	}
	return m, nil
}

// verifierWordCount words (about 32 bits) are enough for people comparing aloud: a party in the middle has one
// chance to match them.
const verifierWordCount = 4

// verifierWords spells 8 bytes per word as alternate adjectives and nouns, e.g. "brave-otter-quiet-finch".
func verifierWords(b []byte) string {
	words := make([]string, verifierWordCount)
	for i := range words {
		v := binary.BigEndian.Uint64(b[8*i:])
		if i%2 == 0 {
			words[i] = adjectives[v%uint64(len(adjectives))]
		} else {
			words[i] = nouns[v%uint64(len(nouns))]
		}
	}
	return strings.Join(words, "-")
}
