package signal

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestNormalizeCode(t *testing.T) {
	for in, want := range map[string]string{
		"7-amber-otter":        "7-amber-otter",
		" 7 Amber OTTER\n":     "7-amber-otter",
		"7__amber--otter":      "7-amber-otter",
		"7.amber.otter":        "7-amber-otter",
		"  ":                   "",
		"Élan Vital":           "élan-vital",
		"my own long passcode": "my-own-long-passcode",
	} {
		if got := NormalizeCode(in); got != want {
			t.Errorf("NormalizeCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewCode(t *testing.T) {
	re := regexp.MustCompile(`^[1-9][0-9]{0,2}-[a-z]+-[a-z]+$`)
	seen := map[string]bool{}
	for range 200 {
		c := NewCode()
		if !re.MatchString(c) || NormalizeCode(c) != c {
			t.Fatalf("bad code %q", c)
		}
		seen[c] = true
	}
	if len(seen) < 195 {
		t.Errorf("only %d distinct codes in 200", len(seen))
	}
}

func TestWordLists(t *testing.T) {
	for _, list := range [][]string{adjectives[:], nouns[:]} {
		seen := map[string]bool{}
		for _, w := range list {
			if seen[w] || w != NormalizeCode(w) || strings.ContainsAny(w, "-_. ") || !regexp.MustCompile(`^[a-z]{2,8}$`).MatchString(w) {
				t.Errorf("bad or duplicate word %q", w)
			}
			seen[w] = true
		}
		if len(list) < 200 {
			t.Errorf("list of %d words", len(list))
		}
	}
}

func TestDerive(t *testing.T) {
	a, err := derive(testCode)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := derive("7 AMBER otter")
	c, _ := derive("8-amber-otter")
	if a.roomID != b.roomID || a.roomID == c.roomID || !isLowerHex(a.roomID, 64) {
		t.Errorf("room IDs %s %s %s", a.roomID, b.roomID, c.roomID)
	}
	if strings.Contains(a.roomID, "amber") || string(a.macKey) == string(a.master) {
		t.Error("keys not separated")
	}
	k1 := a.sessionKey("aa", "bb")
	if string(k1) != string(a.sessionKey("bb", "aa")) || string(k1) == string(a.sessionKey("aa", "cc")) || len(k1) != KeySize {
		t.Error("session key must be symmetric in, and depend on, the peer IDs")
	}
	// A known answer pins the derivation: changing it breaks interoperability.
	if a.roomID != knownRoomID {
		t.Errorf("RoomID(%q) = %s, want %s", testCode, a.roomID, knownRoomID)
	}
}

// knownRoomID is RoomID("7-amber-otter"), computed independently with
// Python's hashlib.pbkdf2_hmac and an HMAC-based HKDF-Expand.
const knownRoomID = "9369121a990843aab5317fbf63187b2dfe2f2853695f2d1dcf72efc22a8b6e9a"

func TestCodeWords(t *testing.T) {
	first, second := CodeWords()
	if len(first) != len(adjectives) || len(second) != len(nouns) {
		t.Fatalf("CodeWords gave %d and %d words, want %d and %d", len(first), len(second), len(adjectives), len(nouns))
	}
	for range 50 {
		parts := strings.Split(NewCode(), "-")
		if !slices.Contains(first, parts[1]) || !slices.Contains(second, parts[2]) {
			t.Fatalf("NewCode word %q or %q is not in CodeWords", parts[1], parts[2])
		}
	}
	first[0] = "changed"
	if again, _ := CodeWords(); again[0] == "changed" {
		t.Error("CodeWords returned the package's own list, not a copy")
	}
}
