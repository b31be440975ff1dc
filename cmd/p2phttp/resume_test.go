package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// download runs what get does after meeting, against srv: one request (two after a 416 that says the part is of no
// use), the part file positioned, the body appended, the file finished. It returns the response status and the
// offset the body was written at.
func download(t *testing.T, srv *httptest.Server, final, path string) (status int, offset int64) {
	t.Helper()
	part, err := openPartial(final, path)
	require.NoError(t, err)
	defer part.keep()
	for {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		part.prepare(req)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			if part.complete(resp) {
				require.NoError(t, part.finish())
				return resp.StatusCode, part.have
			}
			part.startOver()
			continue
		}
		require.Contains(t, []int{http.StatusOK, http.StatusPartialContent}, resp.StatusCode)
		offset, total, err := part.accept(resp, path)
		require.NoError(t, err)
		n, err := io.Copy(part.file, resp.Body)
		require.NoError(t, err)
		require.Equal(t, total, offset+n)
		require.NoError(t, part.finish())
		return resp.StatusCode, offset
	}
}

// interrupted leaves what a run stopped after n bytes leaves: the part file and its meta.
func interrupted(t *testing.T, srv *httptest.Server, final, path string, n int64) {
	t.Helper()
	part, err := openPartial(final, path)
	require.NoError(t, err)
	resp, err := srv.Client().Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _, err = part.accept(resp, path)
	require.NoError(t, err)
	_, err = io.CopyN(part.file, resp.Body, n)
	require.NoError(t, err)
	assert.Equal(t, n, part.keep())
}

func TestResumeAgainstTheDirHandler(t *testing.T) {
	dir := t.TempDir()
	content := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f.bin"), content, 0o644))
	h, _, err := newHandler(dir, "", false, discardLogger())
	require.NoError(t, err)
	// Bytes of the answers to resuming requests; an interrupted 200 may still be ending meanwhile.
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if r.Header.Get("Range") != "" {
			sent.Add(sw.bytes)
		}
	}))
	defer srv.Close()
	final := filepath.Join(t.TempDir(), "f.bin")

	t.Run("the rest only", func(t *testing.T) {
		interrupted(t, srv, final, "/f.bin", 300_000)
		sent.Store(0)
		status, offset := download(t, srv, final, "/f.bin")
		assert.Equal(t, http.StatusPartialContent, status)
		assert.EqualValues(t, 300_000, offset)
		assert.EqualValues(t, len(content)-300_000, sent.Load(), "only the missing bytes travel")
		got, err := os.ReadFile(final)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(content, got))
		assert.NoFileExists(t, final+partSuffix)
		assert.NoFileExists(t, final+metaSuffix)
	})

	t.Run("the file changed on the peer", func(t *testing.T) {
		interrupted(t, srv, final, "/f.bin", 300_000)
		changed := bytes.ToUpper(content)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "f.bin"), changed, 0o644))
		later := time.Now().Add(time.Hour)
		require.NoError(t, os.Chtimes(filepath.Join(dir, "f.bin"), later, later))
		status, offset := download(t, srv, final, "/f.bin")
		assert.Equal(t, http.StatusOK, status)
		assert.Zero(t, offset)
		got, err := os.ReadFile(final)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(changed, got), "the new version, whole, not old bytes with new ones appended")
		content = changed
	})

	t.Run("stopped after the last byte, before the rename", func(t *testing.T) {
		interrupted(t, srv, final, "/f.bin", int64(len(content)))
		sent.Store(0)
		status, offset := download(t, srv, final, "/f.bin")
		assert.Equal(t, http.StatusRequestedRangeNotSatisfiable, status)
		assert.EqualValues(t, len(content), offset)
		assert.Less(t, sent.Load(), int64(100), "nothing but the 416 travels")
		got, err := os.ReadFile(final)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(content, got))
	})

	t.Run("a part file of another PATH is not resumed", func(t *testing.T) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "g.bin"), content, 0o644))
		interrupted(t, srv, final, "/g.bin", 1000)
		require.NoError(t, os.WriteFile(final+partSuffix, bytes.Repeat([]byte("x"), 1000), 0o644))
		status, offset := download(t, srv, final, "/f.bin")
		assert.Equal(t, http.StatusOK, status)
		assert.Zero(t, offset)
		got, err := os.ReadFile(final)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(content, got))
	})

	t.Run("a part file without its meta is not trusted", func(t *testing.T) {
		require.NoError(t, os.WriteFile(final+partSuffix, bytes.Repeat([]byte("x"), 1000), 0o644))
		status, _ := download(t, srv, final, "/f.bin")
		assert.Equal(t, http.StatusOK, status)
		got, err := os.ReadFile(final)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(content, got))
	})
}

func TestPartMetaValidator(t *testing.T) {
	assert.Equal(t, `"abc"`, (&partMeta{ETag: `"abc"`, LastModified: "x"}).validator())
	assert.Equal(t, "x", (&partMeta{ETag: `W/"abc"`, LastModified: "x"}).validator(), "If-Range needs a strong validator")
	assert.Empty(t, (&partMeta{ETag: `W/"abc"`}).validator())
}

func TestParseContentRange(t *testing.T) {
	cases := map[string][3]int64{ // start, size, ok
		"bytes 0-9/10":    {0, 10, 1},
		"bytes 5-9/10":    {5, 10, 1},
		"bytes 5-10/10":   {0, 0, 0},
		"bytes 5-9/*":     {0, 0, 0},
		"bytes */10":      {0, 0, 0},
		"bytes 9-5/10":    {0, 0, 0},
		"items 0-9/10":    {0, 0, 0},
		"bytes -1-9/10":   {0, 0, 0},
		"bytes 0-9/10/10": {0, 0, 0},
		"":                {0, 0, 0},
	}
	for in, want := range cases {
		start, size, ok := parseContentRange(in)
		assert.Equal(t, want, [3]int64{start, size, map[bool]int64{true: 1}[ok]}, in)
	}
}

func TestPartFileIsLocked(t *testing.T) {
	final := filepath.Join(t.TempDir(), "f")
	first, err := openPartial(final, "/f")
	require.NoError(t, err)
	_, err = openPartial(final, "/f")
	require.Error(t, err)
	assert.Equal(t, "another p2phttp get is writing "+final+partSuffix+"; let it finish or stop it first", err.Error())
	first.keep()
	second, err := openPartial(final, "/f")
	require.NoError(t, err, "free again once the first run ends")
	second.keep()
}
