package engine

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// dumpPipeSize is the pipe buffer asked for a dump tool's output. A pipe
// holds 64 KiB by default; a larger one lets pg_dump or mariadb-dump keep
// writing while the agent compresses, instead of stalling, and the database
// keep producing rows. Linux allows 1 MiB without privileges.
const dumpPipeSize = 1 << 20

// dumpCopyBuffer is the buffer CopyDump reads with.
const dumpCopyBuffer = 256 << 10

// CopyDump copies a dump tool's stdout (as returned by exec.Cmd.StdoutPipe)
// to w through a grown pipe and a large buffer, so that the dump tool and
// the agent overlap instead of taking turns.
func CopyDump(w io.Writer, stdout io.Reader) (int64, error) {
	if f, ok := stdout.(*os.File); ok {
		// Best effort: a smaller pipe only costs speed. SyscallConn, not
		// Fd, so that the pipe stays in non-blocking mode.
		if rc, err := f.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, dumpPipeSize) })
		}
	}
	return io.CopyBuffer(w, stdout, make([]byte, dumpCopyBuffer))
}
