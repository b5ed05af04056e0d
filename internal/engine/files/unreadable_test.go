package files

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/backstop-io/backstop/internal/engine"
)

// asAgentEnv names the tree the test binary dumps when it runs as the
// agent's user (see TestDump_UnreadableFileFailsTheBackup).
const asAgentEnv = "BACKSTOP_TEST_DUMP_AS_AGENT"

// A backup run as a user who cannot read one of the files fails, naming
// the file, rather than store a tree without it. The agent's Jobs run as a
// non-root user; this test runs the dump as that user (65532), in a copy of
// the test binary, when it is itself root.
func TestDump_UnreadableFileFailsTheBackup(t *testing.T) {
	if dir := os.Getenv(asAgentEnv); dir != "" {
		// The child: dump and say how it ended.
		err := newEngine(t, dir).Dump(context.Background(), io.Discard)
		fmt.Printf("reason=%s error=%v\n", engine.ReasonOf(err), err)
		return
	}
	// Directories the agent's user may enter, with one file it may not read.
	base, err := os.MkdirTemp("", "backstop-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	data := filepath.Join(base, "data")
	for _, d := range []string{base, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(data, "open.txt"), []byte("anyone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "private.key"), []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var out []byte
	if os.Geteuid() == 0 {
		if err := os.Chown(filepath.Join(data, "private.key"), 0, 0); err != nil {
			t.Fatal(err)
		}
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(base, "files.test")
		b, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run", "^TestDump_UnreadableFileFailsTheBackup$", "-test.count=1")
		cmd.Env = append(os.Environ(), asAgentEnv+"="+data)
		cmd.Dir = base
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		if out, err = cmd.CombinedOutput(); err != nil {
			t.Fatalf("the dump as user 65532: %v\n%s", err, out)
		}
	} else {
		// Already not root: this process cannot read a file of mode 0000.
		if err := os.Chmod(filepath.Join(data, "private.key"), 0); err != nil {
			t.Fatal(err)
		}
		err := newEngine(t, data).Dump(context.Background(), io.Discard)
		out = []byte(fmt.Sprintf("reason=%s error=%v\n", engine.ReasonOf(err), err))
	}
	got := string(out)
	if !strings.Contains(got, "reason="+engine.ReasonDumpFailed+" ") || !strings.Contains(got, "private.key") || !strings.Contains(got, "permission denied") {
		t.Fatalf("the dump ended with %q; want DumpFailed naming private.key, permission denied", got)
	}
}
