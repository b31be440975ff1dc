package signal

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestParseCode(t *testing.T) {
	for _, tc := range []struct {
		in        string
		plate     int
		secret    string
		errSubstr string
	}{
		{in: "7-amber-otter", plate: 7, secret: "amber-otter"},
		{in: " 7 Amber OTTER\n", plate: 7, secret: "amber-otter"},
		{in: "7__amber--otter", plate: 7, secret: "amber-otter"},
		{in: "7.amber.otter", plate: 7, secret: "amber-otter"},
		{in: "99999-x", plate: 99999, secret: "x"},
		{in: "12-Élan Vital", plate: 12, secret: "élan-vital"},
		{in: "12-correct-horse-battery-staple", plate: 12, secret: "correct-horse-battery-staple"},
		{in: "", errSubstr: "empty"},
		{in: " - ", errSubstr: "empty"},
		{in: "amber-otter", errSubstr: "does not start with a nameplate"},
		{in: "7a-amber", errSubstr: "does not start with a nameplate"},
		{in: "+7-amber", errSubstr: "does not start with a nameplate"},
		{in: "07-amber-otter", errSubstr: "leading zero"},
		{in: "0-amber", errSubstr: "leading zero"},
		{in: "100000-amber", errSubstr: "out of range"},
		{in: "99999999999999999999-amber", errSubstr: "nameplate"},
		{in: "7", errSubstr: "no secret words"},
		{in: "7--", errSubstr: "no secret words"},
		{in: "7-" + strings.Repeat("a", 300), errSubstr: "longer than"},
	} {
		c, err := ParseCode(tc.in)
		if tc.errSubstr != "" {
			if !errors.Is(err, ErrInvalidCode) || !strings.Contains(err.Error(), tc.errSubstr) {
				t.Errorf("ParseCode(%q) = %v, %v; want an ErrInvalidCode saying %q", tc.in, c, err, tc.errSubstr)
			}
			continue
		}
		if err != nil || c.Nameplate != tc.plate || c.Secret != tc.secret {
			t.Errorf("ParseCode(%q) = %+v, %v; want %d %q", tc.in, c, err, tc.plate, tc.secret)
		}
		if again, err := ParseCode(c.String()); err != nil || again != c {
			t.Errorf("ParseCode(%q) does not round-trip: %+v, %v", c.String(), again, err)
		}
	}
}

func TestNewCode(t *testing.T) {
	re := regexp.MustCompile(`^[1-9][0-9]{0,2}-[a-z]+-[a-z]+$`)
	seen := map[string]bool{}
	for range 200 {
		s := NewCode()
		c, err := ParseCode(s)
		if !re.MatchString(s) || err != nil || c.String() != s {
			t.Fatalf("bad code %q (%v)", s, err)
		}
		seen[s] = true
	}
	if len(seen) < 195 {
		t.Errorf("only %d distinct codes in 200", len(seen))
	}
	for range 100 {
		if c := newCode(99999, 0); c.Nameplate < 1 || c.Nameplate > MaxNameplate {
			t.Fatalf("nameplate %d out of range", c.Nameplate)
		}
	}
	if c := newCode(999, 2); len(strings.Split(c.Secret, "-")) != 4 {
		t.Fatalf("newCode with 2 extra words: %q", c)
	}
}

func TestWordLists(t *testing.T) {
	for _, list := range [][]string{adjectives[:], nouns[:]} {
		seen := map[string]bool{}
		for _, w := range list {
			if seen[w] || w != NormalizeCode(w) || !regexp.MustCompile(`^[a-z]{2,8}$`).MatchString(w) {
				t.Errorf("bad or duplicate word %q", w)
			}
			seen[w] = true
		}
		if len(list) < 200 {
			t.Errorf("list of %d words", len(list))
		}
	}
}

// FuzzParseCode: any input is a code or an ErrInvalidCode, never a panic, and a code round-trips.
func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"7-amber-otter", " 7 Amber OTTER ", "07-x", "99999-a", "100000-a", "-", "7", "é-ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCode(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("ParseCode(%q): %v is not an ErrInvalidCode", s, err)
			}
			return
		}
		if c.Nameplate < 1 || c.Nameplate > MaxNameplate || c.Secret == "" {
			t.Fatalf("ParseCode(%q) = %+v", s, c)
		}
		if again, err := ParseCode(c.String()); err != nil || again != c {
			t.Fatalf("%q does not round-trip: %+v, %v", c.String(), again, err)
		}
	})
}

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
