package agent

import (
	"crypto/rand"
	"encoding/base64"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/backstop-io/backstop/internal/testutil/azurite"
)

// buildAgent builds the backstop-agent binary, to run it as a process that
// can be killed.
func buildAgent(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), "backstop-agent")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/backstop-agent")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// killMidUpload starts a backup and kills it with SIGKILL once debris()
// reports that its upload is under way.
func killMidUpload(t *testing.T, bin string, env []string, args []string, debris func() bool) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for !debris() {
		select {
		case err := <-exited:
			t.Fatalf("the backup ended (%v) before its upload could be caught in progress", err)
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("no upload in progress after 60s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
}

// A backup killed with SIGKILL mid-upload leaves a temporary file (a
// directory store) or an incomplete multipart upload (S3); the next run of
// the same backup clears it, so the store holds the new artifact and
// nothing else. Deleting a backup whose only run was killed clears it too.
func TestAgent_RetryAfterKilledRunLeavesNoDebris(t *testing.T) {
	bin := buildAgent(t)
	f := newFixture(t)
	data := filepath.Join(f.dir, "volume")
	os.Mkdir(data, 0o755)
	for _, name := range []string{"a.bin", "b.bin", "c.bin"} {
		b := make([]byte, 24<<20) // random: the stored size is the data's
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(data, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	backup := []string{"backup", "--engine", "files", "--path", data, "--encryption", "x25519", "--recipient", f.recipient,
		"--compression-level", "1", "--progress-interval", "0", "--termination-log", ""}
	env := []string{"PATH=" + os.Getenv("PATH"), EnvAccessKeyID + "=" + f.srv.AccessKey, EnvSecretAccessKey + "=" + f.srv.SecretKey}

	t.Run("directory store", func(t *testing.T) {
		root := filepath.Join(f.dir, "store")
		os.Mkdir(root, 0o755)
		args := append(append([]string{}, backup...), "--store-type", "filesystem", "--fs-root", root, "--artifact-path", "ns/files/b1")
		files := func() []string {
			var out []string
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(root, p)
					out = append(out, rel)
				}
				return nil
			})
			sort.Strings(out)
			return out
		}
		killMidUpload(t, bin, env, args, func() bool {
			for _, p := range files() {
				if strings.Contains(p, ".backstop-tmp-") {
					return true
				}
			}
			return false
		})
		if left := files(); len(left) != 1 {
			t.Fatalf("after the killed run the store holds %v, want one temporary file", left)
		}
		retry := exec.Command(bin, args...)
		retry.Env = env
		if out, err := retry.CombinedOutput(); err != nil {
			t.Fatalf("retry: %v\n%s", err, out)
		}
		want := []string{"ns/files/b1/data.tar.zst.age", "ns/files/b1/manifest.json"}
		if got := files(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("after the retry the store holds %v, want %v", got, want)
		}

		// A backup whose only run was killed, then deleted.
		args2 := append(append([]string{}, backup...), "--store-type", "filesystem", "--fs-root", root, "--artifact-path", "ns/files/b2")
		killMidUpload(t, bin, env, args2, func() bool {
			for _, p := range files() {
				if strings.HasPrefix(p, "ns/files/b2/.backstop-tmp-") {
					return true
				}
			}
			return false
		})
		del := exec.Command(bin, "delete", "--store-type", "filesystem", "--fs-root", root, "--artifact-path", "ns/files/b2", "--termination-log", "")
		del.Env = env
		if out, err := del.CombinedOutput(); err != nil {
			t.Fatalf("delete: %v\n%s", err, out)
		}
		if got := files(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("after the delete the store holds %v, want %v", got, want)
		}
		if _, err := os.Stat(filepath.Join(root, "ns", "files", "b2")); err == nil {
			t.Fatal("after the delete the artifact's directory is still there")
		}
	})

	t.Run("S3 store", func(t *testing.T) {
		args := append(append([]string{}, backup...), f.storeArgs("ns/files/b1")...)
		args = append(args, "--s3-part-size-mib", "5")
		dataKey := "cluster-a/ns/files/b1/data.tar.zst.age"
		killMidUpload(t, bin, env, args, func() bool { return f.srv.IncompleteUploads(t, dataKey) > 0 })
		if n := f.srv.IncompleteUploads(t, dataKey); n != 1 {
			t.Fatalf("after the killed run the bucket holds %d incomplete uploads, want 1", n)
		}
		retry := exec.Command(bin, args...)
		retry.Env = env
		if out, err := retry.CombinedOutput(); err != nil {
			t.Fatalf("retry: %v\n%s", err, out)
		}
		if n := f.srv.IncompleteUploads(t, dataKey); n != 0 {
			t.Fatalf("after the retry %d incomplete uploads are left", n)
		}
		want := []string{dataKey, "cluster-a/ns/files/b1/manifest.json"}
		if got := f.srv.Keys(t, "cluster-a/"); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("after the retry the bucket holds %v, want %v", got, want)
		}

		// A backup whose only run was killed, then deleted.
		args2 := append(append([]string{}, backup...), f.storeArgs("ns/files/b2")...)
		args2 = append(args2, "--s3-part-size-mib", "5")
		data2 := "cluster-a/ns/files/b2/data.tar.zst.age"
		killMidUpload(t, bin, env, args2, func() bool { return f.srv.IncompleteUploads(t, data2) > 0 })
		del := exec.Command(bin, append([]string{"delete", "--termination-log", ""}, f.storeArgs("ns/files/b2")...)...)
		del.Env = env
		if out, err := del.CombinedOutput(); err != nil {
			t.Fatalf("delete: %v\n%s", err, out)
		}
		if n := f.srv.IncompleteUploads(t, "cluster-a/"); n != 0 {
			t.Fatalf("after the delete %d incomplete uploads are left", n)
		}
		if got := f.srv.Keys(t, "cluster-a/"); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("after the delete the bucket holds %v, want %v", got, want)
		}
	})
}

// On Azure a backup killed with SIGKILL mid-upload leaves a blob that was
// never committed, holding the blocks it staged. The next run of the same
// backup discards them before it stages its own: a second killed run leaves
// its blocks only, and a retry that completes leaves the artifact and
// nothing else. Deleting a backup whose run was killed clears its blocks
// too, and leaves the other backup alone.
func TestAgent_AzureKilledRunLeavesNoDebris(t *testing.T) {
	bin := buildAgent(t)
	srv := azurite.Start(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "volume")
	os.Mkdir(data, 0o755)
	for _, name := range []string{"a.bin", "b.bin", "c.bin"} {
		b := make([]byte, 24<<20) // random: the stored size is the data's
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(data, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	store := []string{"--store-type", "azure", "--azure-endpoint", srv.Endpoint, "--azure-account", srv.Account,
		"--azure-container", srv.Container, "--azure-block-size-mib", "1", "--prefix", "cluster-a", "--termination-log", ""}
	backup := func(artifact string) []string {
		return append([]string{"backup", "--engine", "files", "--path", data, "--encryption", "x25519", "--recipient", id.Recipient().String(),
			"--compression-level", "1", "--progress-interval", "0", "--artifact-path", artifact}, store...)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), EnvAzureKey + "=" + srv.Key}
	run := func(args []string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, out)
		}
	}
	// runs returns the runs whose blocks are staged at name: a block ID is
	// the run's random prefix, "-" and the block's number.
	runs := func(name string) []string {
		var out []string
		for _, id := range srv.Uncommitted(t, name) {
			b, err := base64.StdEncoding.DecodeString(id)
			if err != nil {
				t.Fatalf("block ID %q: %v", id, err)
			}
			run, _, _ := strings.Cut(string(b), "-")
			if !slices.Contains(out, run) {
				out = append(out, run)
			}
		}
		return out
	}
	// settle waits until the blocks staged at name stop changing: a killed
	// run's last requests may still complete after it is gone.
	settle := func(name string) {
		t.Helper()
		last, stable := srv.Uncommitted(t, name), 0
		for stable < 10 {
			time.Sleep(50 * time.Millisecond)
			if now := srv.Uncommitted(t, name); slices.Equal(now, last) {
				stable++
			} else {
				last, stable = now, 0
			}
		}
	}
	// stagedBy tells whether a run other than before stages blocks at name.
	stagedBy := func(name string, before []string) bool {
		for _, r := range runs(name) {
			if !slices.Contains(before, r) {
				return true
			}
		}
		return false
	}

	dataKey := "cluster-a/ns/files/b1/data.tar.zst.age"
	killMidUpload(t, bin, env, backup("ns/files/b1"), func() bool { return stagedBy(dataKey, nil) })
	settle(dataKey)
	if got := srv.KeysWithUncommitted(t, "cluster-a/"); strings.Join(got, " ") != dataKey {
		t.Fatalf("after the killed run the container holds %v, want the uncommitted %s", got, dataKey)
	}
	first := runs(dataKey)
	killMidUpload(t, bin, env, backup("ns/files/b1"), func() bool { return stagedBy(dataKey, first) })
	settle(dataKey)
	if got := runs(dataKey); len(got) != 1 || got[0] == first[0] {
		t.Fatalf("after a second killed run blocks of runs %v are staged, want the second run's only (the first was %v)", got, first)
	}
	run(backup("ns/files/b1"))
	want := []string{dataKey, "cluster-a/ns/files/b1/manifest.json"}
	if got := srv.KeysWithUncommitted(t, "cluster-a/"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after the retry the container holds %v, want %v", got, want)
	}
	if left := srv.Uncommitted(t, dataKey); len(left) != 0 {
		t.Fatalf("after the retry %d uncommitted blocks are left at the artifact", len(left))
	}

	data2 := "cluster-a/ns/files/b2/data.tar.zst.age"
	killMidUpload(t, bin, env, backup("ns/files/b2"), func() bool { return stagedBy(data2, nil) })
	settle(data2)
	if got := srv.KeysWithUncommitted(t, "cluster-a/ns/files/b2/"); len(got) != 1 {
		t.Fatalf("after the killed run the path holds %v, want one uncommitted blob", got)
	}
	run(append([]string{"delete", "--artifact-path", "ns/files/b2"}, store...))
	if got := srv.KeysWithUncommitted(t, "cluster-a/"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after the delete the container holds %v, want %v", got, want)
	}
}
