package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// maxSymlinkHops bounds how many symlinks resolveOutput follows, as the kernel does (ELOOP).
const maxSymlinkHops = 40

// output is where get writes the body. It is worked out before meeting the peer, so a wrong -o fails at once, and it
// never replaces anything but a regular file: a symlink is followed to its target, a device or FIFO is written into.
type output struct {
	name    string // as the user gave it, for messages; "" for stdout
	path    string // the file to write after following symlinks
	special bool   // a character/block device or a FIFO: written into directly, never replaced, no resume
}

func (o *output) stdout() bool { return o.name == "" }

// resolveOutput works out the output for -o name ("" or "-" is stdout).
func resolveOutput(name string) (*output, error) {
	if name == "" || name == "-" {
		return &output{}, nil
	}
	p := name
	for hops := 0; ; hops++ {
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			dir := filepath.Dir(p)
			di, err := os.Stat(dir)
			if err != nil {
				return nil, usagef("-o %s: the folder %s does not exist", name, dir)
			}
			if !di.IsDir() {
				return nil, usagef("-o %s: %s is not a folder", name, dir)
			}
			return &output{name: name, path: p}, nil
		case err != nil:
			return nil, fmt.Errorf("cannot write -o %s: %w", name, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			if hops == maxSymlinkHops {
				return nil, usagef("-o %s: too many levels of symbolic links", name)
			}
			target, err := os.Readlink(p)
			if err != nil {
				return nil, fmt.Errorf("cannot write -o %s: %w", name, err)
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			p = target
		case fi.IsDir():
			return nil, usagef("-o %s is a folder; name a file in it (-o %s) or use -O to name the file after PATH",
				name, filepath.Join(name, "FILE"))
		case fi.Mode().IsRegular():
			return &output{name: name, path: p}, nil
		case fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe) != 0:
			return &output{name: name, path: p, special: true}, nil
		default:
			return nil, usagef("-o %s is a %s, not something get can write to", name, describeMode(fi.Mode()))
		}
	}
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSocket != 0:
		return "socket"
	default:
		return "special file (" + m.Type().String() + ")"
	}
}

// openSpecial opens a device or FIFO for writing, without truncating or replacing it. Opening a FIFO waits for a
// reader, so it gives up when ctx ends.
func openSpecial(ctx context.Context, p string) (*os.File, error) {
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		ch <- opened{f, err}
	}()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-ctx.Done():
		go func() { // the open may still succeed when a reader comes
			if r := <-ch; r.f != nil {
				r.f.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// nameFromPath is the file name -O gives the body of urlPath: its last element.
func nameFromPath(urlPath string) (string, error) {
	base := path.Base(urlPath)
	if base == "/" || base == "." || base == ".." || strings.ContainsAny(base, `/\`+"\x00") {
		return "", usagef("-O cannot name a file after %q; give one with -o FILE", urlPath)
	}
	return base, nil
}
