package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// newDirHandler serves the files under root (an os.Root's FS) as http.FileServer does (Range, If-Modified-Since,
// directory listings), with three differences that keep a peer from learning more than the folder shares:
//   - hidden names (any path element starting with ".", such as .env or .git/config) are neither listed nor served
//     unless hidden is set;
//   - whatever cannot be opened (a symlink leading out of the folder, a socket) answers 404 exactly like a missing
//     file, and listings leave out symlinks that lead nowhere the peer may go;
//   - each file carries a strong ETag made of its size and modification time, so a download cut short can resume
//     with Range and If-Range and restarts when the file changed meanwhile.
func newDirHandler(root fs.FS, hidden bool) http.Handler {
	fsys := &shareFS{fsys: root, hidden: hidden}
	return &dirHandler{fsys: fsys, files: http.FileServerFS(fsys)}
}

type dirHandler struct {
	fsys  fs.FS
	files http.Handler
}

func (h *dirHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" {
		name = "."
	}
	// A regular file asked for by its plain name is served from the one open that also gives its ETag (a stat
	// before http.FileServer's own open would cost a second open of every file, on every request). Directories,
	// errors and the paths http.FileServer redirects (a trailing slash after a file, ".../index.html") go to it.
	redirects := strings.HasSuffix(r.URL.Path, "/") || strings.HasSuffix(r.URL.Path, "/index.html")
	if !redirects {
		if f, err := h.fsys.Open(name); err == nil {
			defer f.Close()
			fi, err := f.Stat()
			rs, seekable := f.(io.ReadSeeker)
			if err == nil && fi.Mode().IsRegular() && seekable {
				// http.ServeContent checks If-Range and If-None-Match against an ETag already in the header.
				w.Header().Set("ETag", fileETag(fi))
				http.ServeContent(w, r, fi.Name(), fi.ModTime(), rs)
				return
			}
		}
	}
	h.files.ServeHTTP(w, r)
}

// fileETag is a strong validator for a file: it changes whenever the size or the modification time does, which is
// what an editor, a copy or a rewrite in place changes.
func fileETag(fi fs.FileInfo) string {
	return fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano())
}

// shareFS is the shared folder as the peer sees it.
type shareFS struct {
	fsys   fs.FS
	hidden bool
}

func (s *shareFS) Open(name string) (fs.File, error) {
	if !s.hidden && isHiddenPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f, err := s.fsys.Open(name)
	if err != nil {
		// os.Root refuses a path that escapes the folder with an error of its own, which http.FileServer would
		// answer with 500; a peer must not be able to tell that from a missing file.
		if !errors.Is(err, fs.ErrPermission) {
			err = fs.ErrNotExist
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if !fi.IsDir() {
		return f, nil
	}
	d, ok := f.(fs.ReadDirFile)
	if !ok {
		return f, nil
	}
	return &shareDir{ReadDirFile: d, fs: s, name: name}, nil
}

// isHiddenPath reports whether a slash-separated path names something hidden or inside something hidden.
func isHiddenPath(name string) bool {
	for elem := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(elem, ".") && elem != "." {
			return true
		}
	}
	return false
}

// shareDir lists a directory without what shareFS would refuse to open.
type shareDir struct {
	fs.ReadDirFile
	fs   *shareFS
	name string
}

func (d *shareDir) ReadDir(n int) ([]fs.DirEntry, error) {
	entries, err := d.ReadDirFile.ReadDir(n)
	kept := entries[:0]
	for _, e := range entries {
		if !d.fs.hidden && strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			if _, serr := fs.Stat(d.fs, path.Join(d.name, e.Name())); serr != nil {
				continue // leads out of the folder, or nowhere
			}
		}
		kept = append(kept, e)
	}
	// Asked for n > 0 entries, an empty batch must not look like the end of the directory while more may follow.
	if n > 0 && len(kept) == 0 && len(entries) > 0 && err == nil {
		return d.ReadDir(n)
	}
	return kept, err
}
