//go:build !race

// Under the race detector, nfpm's compressing of the binary takes 40
// seconds, not 3, and this test has no concurrency of its own: it runs in
// the tests without -race (CI's second round).

package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// packaged is a regular file in a package: its mode bits and the SHA-256
// of its content.
type packaged struct {
	mode   os.FileMode
	sha256 string
}

func (p packaged) String() string { return fmt.Sprintf("%04o %.12s", p.mode, p.sha256) }

// TestPackages builds the deb and the rpm that .goreleaser.yaml's nfpms
// section describes, with nfpm (the library GoReleaser makes them with),
// from the static binary and what the before hook (scripts/package-files)
// makes; then it reads each package back and checks every file it
// installs, its mode and its content.
func TestPackages(t *testing.T) {
	bin, _ := staticBinary(t)

	// The before hook, into a folder of the test's own; it asks the
	// static binary for the completions.
	extras := t.TempDir()
	hook := exec.Command(filepath.Join(repo, "scripts", "package-files"), extras)
	hook.Env = append(os.Environ(), "DISTLOCK="+bin)
	if out, err := hook.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package-files: %v\n%s", err, out)
	}

	var cfg struct {
		Builds []struct{ Binary string }
		NFPMs  []struct {
			PackageName string `yaml:"package_name"`
			Formats     []string
			Vendor      string
			Homepage    string
			Maintainer  string
			Description string
			License     string
			Section     string
			Priority    string
			Bindir      string
			Contents    files.Contents
		} `yaml:"nfpms"`
	}
	readYAML(t, filepath.Join(repo, ".goreleaser.yaml"), &cfg)
	if len(cfg.NFPMs) != 1 || len(cfg.Builds) != 1 {
		t.Fatalf(".goreleaser.yaml: %d builds and %d nfpms, want one of each", len(cfg.Builds), len(cfg.NFPMs))
	}
	pkg := cfg.NFPMs[0]
	if !slices.Equal(pkg.Formats, []string{"deb", "rpm"}) {
		t.Errorf(".goreleaser.yaml: nfpms formats %q, want deb and rpm", pkg.Formats)
	}

	// What each package must install, and nothing more.
	man := readFile(t, filepath.Join(repo, "docs", "distlock.1"))
	license := readFile(t, filepath.Join(repo, "LICENSE"))
	gzipped := readFile(t, filepath.Join(extras, "manpages", "distlock.1.gz"))
	if got := gunzip(t, gzipped); !bytes.Equal(got, man) {
		t.Errorf("manpages/distlock.1.gz is not docs/distlock.1 gzipped")
	}
	common := map[string]packaged{
		"/usr/bin/distlock":                                  file(0o755, readFile(t, bin)),
		"/usr/share/man/man1/distlock.1.gz":                  file(0o644, gzipped),
		"/usr/share/bash-completion/completions/distlock":    file(0o644, completion(t, bin, "bash")),
		"/usr/share/zsh/vendor-completions/_distlock":        file(0o644, completion(t, bin, "zsh")),
		"/usr/share/fish/vendor_completions.d/distlock.fish": file(0o644, completion(t, bin, "fish")),
	}
	want := map[string]map[string]packaged{
		"deb": withFile(common, "/usr/share/doc/distlock/copyright", file(0o644, license)),
		"rpm": withFile(common, "/usr/share/licenses/distlock/LICENSE", file(0o644, license)),
	}

	for _, format := range pkg.Formats {
		t.Run(format, func(t *testing.T) {
			// The sources as GoReleaser sees them in the clone: what the
			// hook made in the test's folder, the rest in the clone.
			var contents files.Contents
			for _, c := range pkg.Contents {
				c := *c
				if _, err := os.Stat(filepath.Join(extras, c.Source)); err == nil {
					c.Source = filepath.Join(extras, c.Source)
				} else {
					c.Source = filepath.Join(repo, c.Source)
				}
				contents = append(contents, &c)
			}
			// GoReleaser adds the build's binary to bindir.
			contents = append(contents, &files.Content{
				Source:      bin,
				Destination: path.Join(pkg.Bindir, cfg.Builds[0].Binary),
				FileInfo:    &files.ContentFileInfo{Mode: 0o755},
			})
			info := nfpm.WithDefaults(&nfpm.Info{
				Name:         pkg.PackageName,
				Arch:         runtime.GOARCH,
				Version:      "1.2.3",
				Section:      pkg.Section,
				Priority:     pkg.Priority,
				Maintainer:   pkg.Maintainer,
				Description:  pkg.Description,
				Vendor:       pkg.Vendor,
				Homepage:     pkg.Homepage,
				License:      pkg.License,
				Overridables: nfpm.Overridables{Contents: contents},
			})
			packager, err := nfpm.Get(format)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := packager.Package(info, &buf); err != nil {
				t.Fatalf("nfpm %s: %v", format, err)
			}

			var name string
			var got map[string]packaged
			if format == "deb" {
				name, got, err = debFiles(buf.Bytes())
			} else {
				name, got, err = rpmFiles(buf.Bytes())
			}
			if err != nil {
				t.Fatalf("reading the %s back: %v", format, err)
			}
			if name != "distlock" {
				t.Errorf("the %s's package name is %q, want distlock", format, name)
			}
			for p, w := range want[format] {
				if g, ok := got[p]; !ok {
					t.Errorf("the %s does not install %s", format, p)
				} else if g != w {
					t.Errorf("the %s's %s is %v, want %v", format, p, g, w)
				}
			}
			for p := range got {
				if _, ok := want[format][p]; !ok {
					t.Errorf("the %s installs %s, which it should not", format, p)
				}
			}
			if format == "deb" {
				dpkgReads(t, buf.Bytes())
			}
		})
	}
}

// dpkgReads checks, where dpkg-deb is installed, that it reads the deb and
// finds the binary in it.
func dpkgReads(t *testing.T, deb []byte) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Log("no dpkg-deb here to read the deb")
		return
	}
	f := filepath.Join(t.TempDir(), "distlock.deb")
	if err := os.WriteFile(f, deb, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dpkg-deb", "--contents", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), " ./usr/bin/distlock\n") {
		t.Errorf("dpkg-deb --contents: %v\n%s", err, out)
	}
}

func file(mode os.FileMode, content []byte) packaged {
	return packaged{mode: mode, sha256: fmt.Sprintf("%x", sha256.Sum256(content))}
}

// withFile is a copy of m with one more file.
func withFile(m map[string]packaged, name string, f packaged) map[string]packaged {
	out := map[string]packaged{name: f}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// completion is what bin --completion SHELL prints.
func completion(t *testing.T, bin, shell string) []byte {
	t.Helper()
	out, err := exec.Command(bin, "--completion", shell).Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("distlock --completion %s: %v (%d bytes)", shell, err, len(out))
	}
	return out
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// debFiles reads a deb: an ar archive whose control.tar.gz names the
// package and whose data.tar.gz holds the files it installs.
func debFiles(deb []byte) (string, map[string]packaged, error) {
	members, err := arMembers(deb)
	if err != nil {
		return "", nil, err
	}
	if string(members["debian-binary"]) != "2.0\n" {
		return "", nil, fmt.Errorf("debian-binary is %q, want 2.0", members["debian-binary"])
	}
	var name string
	err = readTarGz(members["control.tar.gz"], func(h *tar.Header, content []byte) {
		if path.Clean(h.Name) == "control" {
			for _, line := range strings.Split(string(content), "\n") {
				if v, ok := strings.CutPrefix(line, "Package: "); ok {
					name = v
				}
			}
		}
	})
	if err != nil {
		return "", nil, fmt.Errorf("control.tar.gz: %w", err)
	}
	out := map[string]packaged{}
	err = readTarGz(members["data.tar.gz"], func(h *tar.Header, content []byte) {
		if h.Typeflag == tar.TypeReg {
			out[path.Join("/", h.Name)] = file(os.FileMode(h.Mode).Perm(), content)
		}
	})
	if err != nil {
		return "", nil, fmt.Errorf("data.tar.gz: %w", err)
	}
	return name, out, nil
}

// arMembers reads an ar archive (the common format: 60-byte headers, names
// of 16 bytes at most, members padded to an even length).
func arMembers(b []byte) (map[string][]byte, error) {
	rest, ok := bytes.CutPrefix(b, []byte("!<arch>\n"))
	if !ok {
		return nil, errors.New("not an ar archive")
	}
	members := map[string][]byte{}
	for len(rest) > 0 {
		if len(rest) < 60 || string(rest[58:60]) != "`\n" {
			return nil, errors.New("bad ar member header")
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(rest[:16])), "/")
		var size int
		if _, err := fmt.Sscan(string(rest[48:58]), &size); err != nil || size > len(rest)-60 {
			return nil, fmt.Errorf("ar member %s: bad size", name)
		}
		members[name] = rest[60 : 60+size]
		rest = rest[min(60+size+size%2, len(rest)):]
	}
	return members, nil
}

func readTarGz(b []byte, each func(*tar.Header, []byte)) error {
	if b == nil {
		return errors.New("missing")
	}
	z, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	r := tar.NewReader(z)
	for {
		h, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		content, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		each(h, content)
	}
}

// rpm header tags and types read here (rpm's lib/rpmtag.h).
const (
	rpmTagName        = 1000
	rpmTagFileModes   = 1030
	rpmTagFileDigests = 1035
	rpmTagDirIndexes  = 1116
	rpmTagBaseNames   = 1117
	rpmTagDirNames    = 1118

	rpmTypeInt16       = 3
	rpmTypeInt32       = 4
	rpmTypeString      = 6
	rpmTypeStringArray = 8

	rpmRegularFile = 0o100000
	rpmFileType    = 0o170000
)

// rpmFiles reads an rpm's header, as rpm -qlp does: the package's name and
// its regular files, with their modes and SHA-256 digests (which nfpm
// writes for every file). The payload is not read: the digests vouch for
// what it holds.
func rpmFiles(rpm []byte) (string, map[string]packaged, error) {
	const leadSize = 96
	if len(rpm) < leadSize || !bytes.Equal(rpm[:4], []byte{0xed, 0xab, 0xee, 0xdb}) {
		return "", nil, errors.New("not an rpm")
	}
	// The signature header, padded to 8 bytes, then the header.
	_, n, err := rpmHeader(rpm[leadSize:])
	if err != nil {
		return "", nil, fmt.Errorf("signature: %w", err)
	}
	start := leadSize + (n+7)&^7
	if start > len(rpm) {
		return "", nil, errors.New("truncated after the signature")
	}
	h, _, err := rpmHeader(rpm[start:])
	if err != nil {
		return "", nil, fmt.Errorf("header: %w", err)
	}
	name := h.strings(rpmTagName, rpmTypeString)
	modes := h.ints(rpmTagFileModes, rpmTypeInt16)
	digests := h.strings(rpmTagFileDigests, rpmTypeStringArray)
	dirIndexes := h.ints(rpmTagDirIndexes, rpmTypeInt32)
	baseNames := h.strings(rpmTagBaseNames, rpmTypeStringArray)
	dirNames := h.strings(rpmTagDirNames, rpmTypeStringArray)
	if len(name) != 1 || len(modes) != len(baseNames) || len(digests) != len(baseNames) || len(dirIndexes) != len(baseNames) {
		return "", nil, fmt.Errorf("header: %d names, %d base names, %d modes, %d digests, %d dir indexes",
			len(name), len(baseNames), len(modes), len(digests), len(dirIndexes))
	}
	out := map[string]packaged{}
	for i, base := range baseNames {
		if int(dirIndexes[i]) >= len(dirNames) {
			return "", nil, fmt.Errorf("header: %s: dir index %d out of range", base, dirIndexes[i])
		}
		if modes[i]&rpmFileType == rpmRegularFile {
			out[dirNames[dirIndexes[i]]+base] = packaged{mode: os.FileMode(modes[i]).Perm(), sha256: digests[i]}
		}
	}
	return name[0], out, nil
}

// rpmEntry is one tag's value in an rpm header.
type rpmEntry struct {
	typ   uint32
	count int
	data  []byte // from the value's start to the store's end
}

type rpmTags map[uint32]rpmEntry

// rpmHeader reads an rpm header structure: a magic, the number of index
// entries and the size of the store, the entries (tag, type, offset in
// the store, count), the store. It returns the tags and the length read.
func rpmHeader(b []byte) (rpmTags, int, error) {
	if len(b) < 16 || !bytes.Equal(b[:3], []byte{0x8e, 0xad, 0xe8}) {
		return nil, 0, errors.New("no header magic")
	}
	be := binary.BigEndian
	entries, size := int(be.Uint32(b[8:])), int(be.Uint32(b[12:]))
	store := 16 + 16*entries
	if entries > len(b)/16 || size > len(b)-store {
		return nil, 0, errors.New("truncated")
	}
	tags := rpmTags{}
	for i := 0; i < entries; i++ {
		e := b[16+16*i:]
		off := int(be.Uint32(e[8:]))
		if off > size {
			return nil, 0, errors.New("value outside the store")
		}
		tags[be.Uint32(e)] = rpmEntry{typ: be.Uint32(e[4:]), count: int(be.Uint32(e[12:])), data: b[store+off : store+size]}
	}
	return tags, store + size, nil
}

// strings is a string or string array tag's values (nil if the tag is
// missing, of another type or malformed).
func (h rpmTags) strings(tag, typ uint32) []string {
	e, ok := h[tag]
	if !ok || e.typ != typ {
		return nil
	}
	parts := strings.SplitN(string(e.data), "\x00", e.count+1)
	if len(parts) <= e.count {
		return nil
	}
	return parts[:e.count]
}

// ints is an int16 or int32 array tag's values.
func (h rpmTags) ints(tag, typ uint32) []uint32 {
	e, ok := h[tag]
	width := map[uint32]int{rpmTypeInt16: 2, rpmTypeInt32: 4}[typ]
	if !ok || e.typ != typ || len(e.data) < e.count*width {
		return nil
	}
	out := make([]uint32, e.count)
	for i := range out {
		if width == 2 {
			out[i] = uint32(binary.BigEndian.Uint16(e.data[2*i:]))
		} else {
			out[i] = binary.BigEndian.Uint32(e.data[4*i:])
		}
	}
	return out
}
