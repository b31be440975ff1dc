package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// Suffixes of the files a download to FILE keeps until it is complete: FILE.part holds the bytes received so far and
// FILE.part.meta what identifies the version of the resource they came from. Their names are stable, so that running
// the same command again (after Ctrl-C, a crash or a lost peer) resumes where the last run stopped.
const (
	partSuffix = ".part"
	metaSuffix = ".part.meta"
)

// maxMetaSize bounds the .part.meta file read back.
const maxMetaSize = 64 << 10

// partMeta is the content of FILE.part.meta.
type partMeta struct {
	Path         string `json:"path"`                    // the PATH requested
	ETag         string `json:"etag,omitempty"`          // the peer's strong ETag
	LastModified string `json:"last_modified,omitempty"` // the peer's Last-Modified
	Size         int64  `json:"size"`                    // of the whole resource; -1 when unknown
}

// validator is what If-Range carries: a strong ETag, else the Last-Modified date; "" when neither can tell versions
// apart, and then nothing is resumed.
func (m *partMeta) validator() string {
	if m.ETag != "" && !strings.HasPrefix(m.ETag, "W/") {
		return m.ETag
	}
	return m.LastModified
}

// partial is a download to a regular file in progress.
type partial struct {
	final  string
	file   *os.File // FILE.part
	have   int64    // bytes in file that a Range request may build on; 0 starts over
	meta   partMeta
	ranged bool // the last request asked for the rest only
}

// openPartial opens (or creates) final's part file before the peer is met, so that a folder that cannot be written
// fails at once, and reads back what a previous run left for reqPath.
func openPartial(final, reqPath string) (*partial, error) {
	partPath := final + partSuffix
	if fi, err := os.Lstat(partPath); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cannot write -o %s: %s exists and is not a regular file; move it away", final, partPath)
	}
	f, err := os.OpenFile(partPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot write -o %s: %w", final, err)
	}
	if ok, err := lockPart(f); !ok {
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot lock %s: %w", partPath, err)
		}
		return nil, fmt.Errorf("another p2phttp get is writing %s; let it finish or stop it first", partPath)
	}
	p := &partial{final: final, file: f}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot write -o %s: %w", final, err)
	}
	if m, ok := readMeta(final+metaSuffix, reqPath); ok && fi.Size() > 0 && (m.Size < 0 || fi.Size() <= m.Size) {
		p.meta, p.have = m, fi.Size()
	}
	return p, nil
}

func readMeta(name, reqPath string) (partMeta, bool) {
	var m partMeta
	f, err := os.Open(name)
	if err != nil {
		return m, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetaSize))
	if err != nil || json.Unmarshal(b, &m) != nil || m.Path != reqPath || m.validator() == "" {
		return partMeta{}, false
	}
	return m, true
}

// prepare asks for the rest of the resource when part of it is here, and only if it is still the same version.
func (p *partial) prepare(req *http.Request) {
	p.ranged = p.have > 0
	if p.ranged {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", p.have))
		req.Header.Set("If-Range", p.meta.validator())
	}
}

// complete reports whether a 416 answer to a range request says the part file already holds the whole resource
// (the previous run was stopped between receiving the last byte and renaming the file).
func (p *partial) complete(resp *http.Response) bool {
	total, ok := strings.CutPrefix(resp.Header.Get("Content-Range"), "bytes */")
	n, err := strconv.ParseInt(total, 10, 64)
	return p.ranged && ok && err == nil && n == p.have
}

// startOver forgets the bytes a previous run left.
func (p *partial) startOver() { p.have, p.ranged = 0, false }

// accept positions the part file for a 2xx response and records the response's validators. It returns the offset of
// the body in the resource and the resource's size (-1 when unknown).
func (p *partial) accept(resp *http.Response, reqPath string) (offset, total int64, err error) {
	total = resp.ContentLength
	if resp.StatusCode == http.StatusPartialContent {
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !p.ranged || !ok || start != p.have {
			return 0, 0, fmt.Errorf("the peer answered 206 with Content-Range %q, not the rest from byte %d",
				escapeText(resp.Header.Get("Content-Range")), p.have)
		}
		offset, total = start, size
	}
	if err := p.file.Truncate(offset); err != nil {
		return 0, 0, fmt.Errorf("cannot write %s: %w", p.file.Name(), err)
	}
	if _, err := p.file.Seek(offset, io.SeekStart); err != nil {
		return 0, 0, fmt.Errorf("cannot write %s: %w", p.file.Name(), err)
	}
	p.meta = partMeta{Path: reqPath, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), Size: total}
	b, _ := json.Marshal(p.meta)
	if err := os.WriteFile(p.final+metaSuffix, b, 0o644); err != nil {
		return 0, 0, fmt.Errorf("cannot write %s: %w", p.final+metaSuffix, err)
	}
	return offset, total, nil
}

// parseContentRange parses "bytes START-END/SIZE".
func parseContentRange(s string) (start, size int64, ok bool) {
	rng, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, false
	}
	span, sz, ok := strings.Cut(rng, "/")
	first, last, ok2 := strings.Cut(span, "-")
	if !ok || !ok2 {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	size, err3 := strconv.ParseInt(sz, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || end >= size {
		return 0, 0, false
	}
	return start, size, true
}

// finish makes the part file the final file.
func (p *partial) finish() error {
	err := p.file.Sync()
	if cerr := p.file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p.file.Name(), p.final)
	}
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", p.final, err)
	}
	os.Remove(p.final + metaSuffix)
	p.file = nil
	return nil
}

// keep closes the part file of a download that did not finish, so the next run resumes it; an empty one is removed.
// It reports the bytes kept.
func (p *partial) keep() int64 {
	if p.file == nil {
		return 0
	}
	p.file.Close()
	name := p.file.Name()
	p.file = nil
	fi, err := os.Stat(name)
	if err != nil {
		return 0
	}
	if fi.Size() == 0 {
		os.Remove(name)
		os.Remove(p.final + metaSuffix)
		return 0
	}
	return fi.Size()
}
