package signal

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
			assert.ErrorIs(t, err, ErrInvalidCode, "ParseCode(%q) = %v", tc.in, c)
			assert.ErrorContains(t, err, tc.errSubstr, "ParseCode(%q) = %v", tc.in, c)
			continue
		}
		assert.NoError(t, err, "ParseCode(%q)", tc.in)
		assert.Equal(t, tc.plate, c.Nameplate, "ParseCode(%q) nameplate", tc.in)
		assert.Equal(t, tc.secret, c.Secret, "ParseCode(%q) secret", tc.in)
		again, err := ParseCode(c.String())
		assert.NoError(t, err, "ParseCode(%q) does not round-trip", c.String())
		assert.Equal(t, c, again, "ParseCode(%q) does not round-trip", c.String())
	}
}

func TestNewCode(t *testing.T) {
	re := regexp.MustCompile(`^[1-9][0-9]{0,2}-[a-z]+-[a-z]+$`)
	seen := map[string]bool{}
	for range 200 {
		s := NewCode()
		require.Regexp(t, re, s, "bad code")
		c, err := ParseCode(s)
		require.NoError(t, err, "bad code %q", s)
		require.Equal(t, s, c.String(), "bad code")
		seen[s] = true
	}
	assert.GreaterOrEqual(t, len(seen), 195, "distinct codes in 200")
	for range 100 {
		c := newCode(99999, 0)
		require.GreaterOrEqual(t, c.Nameplate, 1, "nameplate out of range")
		require.LessOrEqual(t, c.Nameplate, MaxNameplate, "nameplate out of range")
	}
	c := newCode(999, 2)
	require.Len(t, strings.Split(c.Secret, "-"), 4, "newCode with 2 extra words: %q", c)
}

func TestWordLists(t *testing.T) {
	for _, list := range [][]string{adjectives[:], nouns[:]} {
		seen := map[string]bool{}
		for _, w := range list {
			assert.False(t, seen[w], "duplicate word %q", w)
			assert.Equal(t, NormalizeCode(w), w, "word not normalized")
			assert.Regexp(t, `^[a-z]{2,8}$`, w, "bad word")
			seen[w] = true
		}
		assert.GreaterOrEqual(t, len(list), 200, "words in the list")
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
			require.ErrorIs(t, err, ErrInvalidCode, "ParseCode(%q)", s)
			return
		}
		require.GreaterOrEqual(t, c.Nameplate, 1, "ParseCode(%q) = %+v", s, c)
		require.LessOrEqual(t, c.Nameplate, MaxNameplate, "ParseCode(%q) = %+v", s, c)
		require.NotEmpty(t, c.Secret, "ParseCode(%q) = %+v", s, c)
		again, err := ParseCode(c.String())
		require.NoError(t, err, "%q does not round-trip", c.String())
		require.Equal(t, c, again, "%q does not round-trip", c.String())
	})
}

func TestCodeWords(t *testing.T) {
	first, second := CodeWords()
	require.Len(t, first, len(adjectives), "first words")
	require.Len(t, second, len(nouns), "second words")
	for range 50 {
		parts := strings.Split(NewCode(), "-")
		require.Contains(t, first, parts[1], "NewCode word not in CodeWords")
		require.Contains(t, second, parts[2], "NewCode word not in CodeWords")
	}
	first[0] = "changed"
	again, _ := CodeWords()
	assert.NotEqual(t, "changed", again[0], "CodeWords returned the package's own list, not a copy")
}
