//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/p2phttp/p2phttp/signal"
)

// A real browser is the user forward is made for: these tests load pages through forward in headless Chromium and
// check what the browser made of them (the DOM after its scripts ran, a screenshot), not only the bytes.

// Colours the test site paints with, so that a screenshot shows which parts rendered.
var (
	pageBackground = color.RGBA{0x2a, 0x6f, 0x97, 0xff} // body, from the stylesheet
	imageColour    = color.RGBA{0xe0, 0x7a, 0x5f, 0xff} // every pixel of logo.png
	fetchedColour  = color.RGBA{0x81, 0xb2, 0x9a, 0xff} // the box the script adds, styled by the stylesheet
)

const (
	screenWidth, screenHeight = 800, 600
	logoWidth, logoHeight     = 120, 80
	// browserTimeout bounds one run of the browser, start to exit.
	browserTimeout = 90 * time.Second
	// virtualTimeBudget is how long (in the page's virtual time, which stands still while a request is pending)
	// the browser lets the page's scripts run before it dumps the DOM or takes the screenshot.
	virtualTimeBudget = "10000"
)

// chromiumBinary returns the path of Debian's chromium; without it the test skips (and fails under CI=true, which
// installs it).
func chromiumBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed, and CI=true must run the browser tests (.ci/run installs it)")
		}
		t.Skip("chromium is not installed (CI installs it): cannot test forward with a real browser")
	}
	return path
}

// runChromium loads url in a fresh headless Chromium with extra flags (--dump-dom, --screenshot=...) and returns its
// stdout. The browser gets a profile and a $HOME of its own in a temporary directory, resolves no host name but
// 127.0.0.1 (the tests use only that, and a browser's background services must not reach beyond loopback), and is
// killed with its child processes when it overruns browserTimeout or the test ends.
func runChromium(t *testing.T, bin, url string, extra ...string) string {
	t.Helper()
	home := t.TempDir()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir=" + filepath.Join(home, "profile"),
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update", "--disable-default-apps",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--virtual-time-budget=" + virtualTimeBudget,
	}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home)
	// A process group of its own, so that the renderer and utility processes die with the browser.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	killGroup := func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}
	cmd.Cancel = killGroup
	cmd.WaitDelay = 5 * time.Second // children holding stdout open must not keep Wait from returning
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { killGroup() })
	err := cmd.Wait()
	require.NoError(t, ctx.Err(), "chromium ran longer than %s; stderr:\n%s", browserTimeout, stderr.String())
	require.NoError(t, err, "chromium %v; stderr:\n%s", extra, stderr.String())
	// A page that does not load still exits 0, with an empty DOM or a blank screenshot.
	require.NotContains(t, stderr.String(), "Page load failed", "chromium %v", extra)
	return stdout.String()
}

// logoPNG is a solid logoWidth x logoHeight image in imageColour.
func logoPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, logoWidth, logoHeight))
	for y := range logoHeight {
		for x := range logoWidth {
			img.Set(x, y, imageColour)
		}
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

func cssColour(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// writeSite writes a small site into dir: index.html pulls a stylesheet, a script and an image, and links to
// second.html, which the script also fetches to put the token it holds on the first page.
func writeSite(t *testing.T, dir, token string) {
	files := map[string]string{
		"index.html": `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>p2phttp browser test</title>
<link rel="stylesheet" href="style.css">
<script src="app.js" defer></script>
</head>
<body>
<h1>Shared through p2phttp</h1>
<img id="logo" src="logo.png" alt="logo">
<p><a id="next" href="second.html">the second page</a></p>
<p id="result">the script did not run</p>
</body>
</html>
`,
		"second.html": `<!doctype html>
<html><head><meta charset="utf-8"><title>second page</title><link rel="stylesheet" href="style.css"></head>
<body><p id="token">` + token + `</p><p><a href="./">back</a></p></body></html>
`,
		"style.css": `html, body { margin: 0; background: ` + cssColour(pageBackground) + `; }
h1 { color: rgb(250, 250, 250); font: 24px sans-serif; margin: 0; padding: 16px; }
#logo { display: block; margin: 16px; width: ` + fmt.Sprint(logoWidth) + `px; height: ` + fmt.Sprint(logoHeight) + `px; }
.fetched { background: ` + cssColour(fetchedColour) + `; width: 300px; height: 100px; margin: 16px; }
`,
		"app.js": `"use strict";
// Once everything is loaded: fetch the second page, take the token out of it, and show it in a box the
// stylesheet colours, with what the browser says of the stylesheet and the image.
window.addEventListener("load", async () => {
	const result = document.getElementById("result");
	try {
		const res = await fetch(document.getElementById("next").href);
		const page = new DOMParser().parseFromString(await res.text(), "text/html");
		const logo = document.getElementById("logo");
		const box = document.createElement("div");
		box.id = "fetched";
		box.className = "fetched";
		box.textContent = "token " + page.getElementById("token").textContent;
		document.body.appendChild(box);
		result.textContent = [
			"status " + res.status,
			"image " + logo.naturalWidth + "x" + logo.naturalHeight,
			"h1 " + getComputedStyle(document.querySelector("h1")).color,
		].join(", ");
	} catch (err) {
		result.textContent = "failed: " + err;
	}
});
`,
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "logo.png"), logoPNG(t), 0o644))
}

// countColour counts the pixels of img within 3 per channel of c (no colour management should alter them, but a
// screenshot is not a byte-exact channel).
func countColour(img image.Image, c color.RGBA) int {
	near := func(a uint32, b uint8) bool {
		d := int(a>>8) - int(b)
		return d >= -3 && d <= 3
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r, c.R) && near(g, c.G) && near(bl, c.B) {
				n++
			}
		}
	}
	return n
}

// startForwardTo starts forward for code on a free loopback port and returns its base URL once it is ready.
func startForwardTo(t *testing.T, code string, args []string) (*proc, string) {
	t.Helper()
	listen := freeAddr(t, "tcp")
	fwd := startCode(t, code, append([]string{"forward", "--listen", listen}, args...)...)
	fwd.waitStderr(`forwarding http://`+regexp.QuoteMeta(listen)+` to the peer`, 60*time.Second)
	return fwd, "http://" + listen
}

// Chromium loads a shared folder's page through forward: the stylesheet, the script and the image come over the
// path, the script fetches a second page over it and changes the page with what it found, and a screenshot shows
// it all rendered.
func TestChromiumLoadsSharedFolderThroughForward(t *testing.T) {
	chromium := chromiumBinary(t)
	srv := testServer(t)
	dir := t.TempDir()
	token := fmt.Sprintf("%x", randomBytes(t, 8))
	writeSite(t, dir, token)
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--dir", dir}, peerArgs(srv)...)...)
	fwd, base := startForwardTo(t, code, peerArgs(srv))

	dom := runChromium(t, chromium, base+"/", "--dump-dom")
	// The script ran, with the data it fetched through the path, after the image and the stylesheet had loaded.
	assert.Contains(t, dom, `<div id="fetched" class="fetched">token `+token+`</div>`, "the DOM after the scripts:\n%s", dom)
	assert.Contains(t, dom, `<p id="result">status 200, image `+fmt.Sprintf("%dx%d", logoWidth, logoHeight)+`, h1 rgb(250, 250, 250)</p>`, "the DOM after the scripts:\n%s", dom)

	// Each part of the page was asked of serve and answered in full.
	for _, path := range []string{"/", "/style.css", "/app.js", "/logo.png", "/second.html"} {
		serve.waitStderr(`\np2phttp: 127\.0\.0\.1:\d+ GET `+regexp.QuoteMeta(path)+` 200 [1-9]\d* bytes `, 10*time.Second)
	}

	// The same page as the browser paints it; `go test -artifacts -outputdir DIR` keeps the PNG for a person to see.
	shot := filepath.Join(t.ArtifactDir(), "page.png")
	runChromium(t, chromium, base+"/", "--screenshot="+shot, fmt.Sprintf("--window-size=%d,%d", screenWidth, screenHeight), "--hide-scrollbars")
	f, err := os.Open(shot)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err, "the screenshot is a PNG")
	assert.Equal(t, image.Pt(screenWidth, screenHeight), img.Bounds().Size())
	// The stylesheet's background fills most of the window, the image is drawn whole at its size, and the box the
	// script added after its fetch is there, in the stylesheet's colour.
	assert.Greater(t, countColour(img, pageBackground), screenWidth*screenHeight/2, "page background pixels")
	assert.Equal(t, logoWidth*logoHeight, countColour(img, imageColour), "image pixels")
	box := countColour(img, fetchedColour) // less the token's text drawn on it
	assert.True(t, box > 300*100*9/10 && box <= 300*100, "%d pixels of the 300x100 box the script added", box)

	assert.Equal(t, exitInterrupted, fwd.interrupt())
	assert.Equal(t, exitInterrupted, serve.interrupt())
}

// webApp is a small web application behind serve --proxy: its page sets a session cookie, and its script asks
// the API (fetch) who it is, which only the cookie tells, and posts a message (XMLHttpRequest) it echoes.
type webApp struct {
	session string

	mu      sync.Mutex
	cookies map[string]string // path -> the session cookie that came with its request ("" if none)
}

func (a *webApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got := ""
	if c, err := r.Cookie("session"); err == nil {
		got = c.Value
	}
	a.mu.Lock()
	a.cookies[r.URL.Path] = got
	a.mu.Unlock()
	switch r.Method + " " + r.URL.Path {
	case "GET /":
		http.SetCookie(w, &http.Cookie{Name: "session", Value: a.session, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html>
<html><head><meta charset="utf-8"><title>web app</title><script src="/app.js" defer></script></head>
<body><p id="whoami">unknown</p><p id="echo">no echo</p></body></html>
`)
	case "GET /app.js":
		w.Header().Set("Content-Type", "text/javascript")
		// The cookie is HttpOnly: the script cannot read it, only the browser can send it back.
		io.WriteString(w, `"use strict";
(async () => {
	const who = document.getElementById("whoami");
	try {
		const res = await fetch("/api/whoami");
		const body = await res.json();
		who.textContent = "status " + res.status + ", session " + body.session;
	} catch (err) {
		who.textContent = "fetch failed: " + err;
	}
	const echo = document.getElementById("echo");
	const xhr = new XMLHttpRequest();
	xhr.open("POST", "/api/echo");
	xhr.setRequestHeader("Content-Type", "text/plain");
	xhr.onload = () => { echo.textContent = "status " + xhr.status + ", " + xhr.responseText; };
	xhr.onerror = () => { echo.textContent = "xhr failed"; };
	xhr.send("hello from the browser");
})();
`)
	case "GET /api/whoami":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"session":%q}`, got)
	case "POST /api/echo":
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<10))
		fmt.Fprintf(w, "echo %q with session %s", body, got)
	default:
		http.NotFound(w, r)
	}
}

// cookieOn returns the session cookie the app received with its request for path, and whether it was requested.
func (a *webApp) cookieOn(path string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.cookies[path]
	return c, ok
}

// Chromium uses a web app through forward and serve --proxy: the cookie the app sets comes back with the script's
// fetch and XMLHttpRequest, and their answers change the page.
func TestChromiumUsesWebAppThroughServeProxy(t *testing.T) {
	chromium := chromiumBinary(t)
	app := &webApp{session: fmt.Sprintf("%x", randomBytes(t, 12)), cookies: map[string]string{}}
	backend := httptest.NewServer(app)
	defer backend.Close()
	srv := testServer(t)
	code := signal.NewCode()
	serve := startCode(t, code, append([]string{"serve", "--proxy", backend.URL}, peerArgs(srv)...)...)
	fwd, base := startForwardTo(t, code, peerArgs(srv))

	dom := runChromium(t, chromium, base+"/", "--dump-dom")
	assert.Contains(t, dom, `<p id="whoami">status 200, session `+app.session+`</p>`, "the DOM after the scripts:\n%s", dom)
	assert.Contains(t, dom, `<p id="echo">status 200, echo "hello from the browser" with session `+app.session+`</p>`, "the DOM after the scripts:\n%s", dom)

	// The browser came without a cookie (a fresh profile) and brought back the one it was given.
	for path, want := range map[string]string{"/": "", "/app.js": app.session, "/api/whoami": app.session, "/api/echo": app.session} {
		got, asked := app.cookieOn(path)
		if assert.True(t, asked, "the app was not asked for %s", path) {
			assert.Equal(t, want, got, "session cookie on %s", path)
		}
	}
	for _, req := range []string{"GET /", "GET /app.js", "GET /api/whoami", "POST /api/echo"} {
		serve.waitStderr(`\np2phttp: 127\.0\.0\.1:\d+ `+regexp.QuoteMeta(req)+` 200 [1-9]\d* bytes `, 10*time.Second)
	}
	_, serveErr := serve.output()
	assert.NotContains(t, serveErr, "warning")

	assert.Equal(t, exitInterrupted, fwd.interrupt())
	assert.Equal(t, exitInterrupted, serve.interrupt())
}
