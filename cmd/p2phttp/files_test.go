package main

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sharedFolder makes a folder with visible and hidden files and symlinks inside and out, and serves it.
func sharedFolder(t *testing.T, hidden bool) (dir string, srv *httptest.Server) {
	t.Helper()
	dir = t.TempDir()
	write := func(name, content string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	write("visible.txt", "visible")
	write(".env", "SECRET=1")
	write(".git/config", "[core]")
	write("sub/.hidden", "hidden")
	write("sub/a.txt", "a")
	outside := filepath.Join(t.TempDir(), "outside.txt")
	require.NoError(t, os.WriteFile(outside, []byte("outside"), 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "escape")))
	require.NoError(t, os.Symlink("visible.txt", filepath.Join(dir, "inside")))
	h, _, err := newHandler(dir, "", hidden, discardLogger())
	require.NoError(t, err)
	srv = httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return dir, srv
}

func fetch(t *testing.T, srv *httptest.Server, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestDirHandlerKeepsHiddenFilesAndTheOutsidePrivate(t *testing.T) {
	_, srv := sharedFolder(t, false)
	_, missing := fetch(t, srv, "/no-such-file", nil)
	for _, p := range []string{"/.env", "/.git/config", "/.git/", "/sub/.hidden", "/escape", "/no-such-file"} {
		resp, body := fetch(t, srv, p, nil)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, p)
		assert.Equal(t, missing, body, "%s answers exactly like a missing file", p)
	}
	resp, body := fetch(t, srv, "/", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n"+
		"<a href=\"inside\">inside</a>\n<a href=\"sub/\">sub/</a>\n<a href=\"visible.txt\">visible.txt</a>\n</pre>\n", body,
		"no hidden names, no symlink leading out")
	_, body = fetch(t, srv, "/sub/", nil)
	assert.NotContains(t, body, ".hidden")
	_, body = fetch(t, srv, "/inside", nil)
	assert.Equal(t, "visible", body, "a symlink within the folder is served")

	// --hidden shares them; the outside stays outside.
	_, srv = sharedFolder(t, true)
	for p, want := range map[string]string{"/.env": "SECRET=1", "/.git/config": "[core]", "/sub/.hidden": "hidden"} {
		resp, body := fetch(t, srv, p, nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode, p)
		assert.Equal(t, want, body)
	}
	resp, _ = fetch(t, srv, "/escape", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestDirHandlerETagAndIfRange(t *testing.T) {
	dir, srv := sharedFolder(t, false)
	resp, _ := fetch(t, srv, "/visible.txt", nil)
	etag := resp.Header.Get("ETag")
	assert.Regexp(t, `^"7-[0-9a-f]+"$`, etag, "strong, from size and modification time")
	assert.Empty(t, resp.Header.Values("Etag")[1:], "one ETag")
	lastMod := resp.Header.Get("Last-Modified")
	require.NotEmpty(t, lastMod)
	resp, _ = fetch(t, srv, "/", nil)
	assert.Empty(t, resp.Header.Get("ETag"), "a listing changes without its folder's size changing: no ETag")

	resp, body := fetch(t, srv, "/visible.txt", map[string]string{"Range": "bytes=3-", "If-Range": etag})
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, "ible", body)
	resp, body = fetch(t, srv, "/visible.txt", map[string]string{"Range": "bytes=3-", "If-Range": lastMod})
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, "ible", body)
	resp, _ = fetch(t, srv, "/visible.txt", map[string]string{"If-None-Match": etag})
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)

	// Rewritten with the same size: a new ETag, and If-Range with the old one gets the whole new file.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "visible.txt"), []byte("VISIBLE"), 0o644))
	later := time.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "visible.txt"), later, later))
	resp, body = fetch(t, srv, "/visible.txt", map[string]string{"Range": "bytes=3-", "If-Range": etag})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "VISIBLE", body)
	assert.NotEqual(t, etag, resp.Header.Get("ETag"))
}

// countingFS counts the opens of each name.
type countingFS struct {
	fs.FS
	mu    sync.Mutex
	opens map[string]int
}

func (c *countingFS) Open(name string) (fs.File, error) {
	c.mu.Lock()
	c.opens[name]++
	c.mu.Unlock()
	return c.FS.Open(name)
}

// A file is opened once per request, and what http.FileServer does around files (redirects, listings, 404s,
// conditional and Range requests) is unchanged.
func TestDirHandlerOpensAFileOnce(t *testing.T) {
	dir, _ := sharedFolder(t, false)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "index.html"), []byte("<p>index</p>"), 0o644))
	cfs := &countingFS{FS: os.DirFS(dir), opens: map[string]int{}}
	srv := httptest.NewServer(newDirHandler(cfs, false))
	defer srv.Close()

	resp, body := fetch(t, srv, "/visible.txt", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "visible", body)
	assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.NotEmpty(t, resp.Header.Get("Last-Modified"))
	etag := resp.Header.Get("ETag")
	assert.Regexp(t, `^"7-[0-9a-f]+"$`, etag)
	assert.Equal(t, 1, cfs.opens["visible.txt"], "opens of a file served")

	resp, _ = fetch(t, srv, "/visible.txt", map[string]string{"If-None-Match": etag})
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	resp, body = fetch(t, srv, "/sub/../visible.txt", map[string]string{"Range": "bytes=2-4"})
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, "sib", body)

	noRedirect := *srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for path, want := range map[string]string{"/visible.txt/": "../visible.txt", "/sub/index.html": "./", "/sub": "sub/"} {
		resp, err := noRedirect.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusMovedPermanently, resp.StatusCode, path)
		assert.Equal(t, want, resp.Header.Get("Location"), path)
	}
	resp, body = fetch(t, srv, "/sub/", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "<p>index</p>", body, "a folder's index.html")
	resp, _ = fetch(t, srv, "/.env", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}
