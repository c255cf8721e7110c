package keyfile_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/internal/keyfile"
)

func TestReadRefusesFilesOthersMayWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		says string // "" for accepted
	}{
		{0o600, ""},
		{0o400, ""},
		{0o644, ""},
		{0o640, ""},
		{0o620, "its group may write (mode 0620)"},
		{0o660, "its group may write"},
		{0o602, "every user may write (mode 0602)"},
		{0o666, "every user may write"},
	} {
		path := filepath.Join(dir, "key-"+tc.mode.String())
		if err := os.WriteFile(path, []byte("content"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil { // not subject to the umask
			t.Fatal(err)
		}
		b, err := keyfile.Read(path)
		switch {
		case tc.says == "" && (err != nil || string(b) != "content"):
			t.Errorf("mode %04o: %q, %v; want the content", tc.mode, b, err)
		case tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "chmod go-w "+path)):
			t.Errorf("mode %04o: %v; want an error saying %q and how to fix it", tc.mode, err, tc.says)
		}
	}
	// Through a symbolic link, the target's mode counts.
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o666); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := keyfile.Read(link); err == nil {
		t.Errorf("a link to a world-writable file was read")
	}
	if _, err := keyfile.Read(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("a missing file: %v", err)
	}
}
