// Package keyfile reads the files roomcast's security rests on (API key
// files, JWT secrets and public keys, TLS certificates and keys), refusing
// any that users other than the owner may write: whoever can change such a
// file can let themselves in, as a key or signer of their own, or swap the
// server's identity.
package keyfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// unsafeBits are the mode bits that let the group or everyone write a file.
const unsafeBits fs.FileMode = 0o022

// Open opens the file at path for reading, once its mode (that of the file
// opened, so that a file swapped in after the check is not read unchecked)
// lets only its owner write it. Symbolic links are followed: the mode
// checked is the target's. On Windows, whose files have no such mode bits,
// nothing is checked. The caller closes the file.
func Open(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := Check(path, fi.Mode()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Read is Open, then the whole file.
func Read(path string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Check returns an error saying what to do if mode, the mode of the file at
// path, lets the group or everyone write it; nil otherwise, and always on
// Windows.
func Check(path string, mode fs.FileMode) error {
	if runtime.GOOS == "windows" || mode&unsafeBits == 0 {
		return nil
	}
	who := "its group"
	if mode&0o002 != 0 {
		who = "every user"
	}
	return fmt.Errorf("%s: refusing a key file that %s may write (mode %04o): whoever can change it can let themselves in; make it writable by its owner only (chmod go-w %s)", path, who, mode.Perm(), path)
}
