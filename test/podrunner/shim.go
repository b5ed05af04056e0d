package podrunner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The container process is started as a re-execution of the current binary
// (the test binary) with shimEnv set. The kernel gives it fresh mount and UTS
// namespaces (SysProcAttr.Unshareflags); the init function below notices
// shimEnv, builds the container's view of the filesystem and execs the
// container command, so the process the runner waits on is the container
// process itself.
//
// The view: a tmpfs becomes the new root, holding a bind mount of every
// top-level entry of the host root. Each volume is bind-mounted at its mount
// path. A mount path that does not exist is created without touching the host:
// the deepest existing directory on the way to it is replaced, in this
// namespace only, by a tmpfs that holds bind mounts of the directory's
// entries (the same trick as for the root), and the missing directories are
// made in that tmpfs. Then pivot_root and exec.
const shimEnv = "BACKSTOP_PODRUNNER_SHIM"

// shimExitCode is the exit code of a container that could not be started;
// the runner reports it as reason StartError, as the kubelet does.
const shimExitCode = 128

type shimSpec struct {
	// Argv is the argument vector the process sees.
	Argv []string `json:"argv"`
	// Binary, when set, is the host path executed (Argv[0] is only a name);
	// it is opened before the mounts so a volume cannot hide it.
	Binary string `json:"binary,omitempty"`
	// Env is the complete environment of the process.
	Env []string `json:"env"`
	// Dir is the working directory in the container's view.
	Dir string `json:"dir"`
	// Hostname is set in the new UTS namespace.
	Hostname string `json:"hostname"`
	// Root is an empty host directory that becomes the root mount point.
	Root string `json:"root"`
	// Mounts are applied in order (the runner sorts them by depth).
	Mounts []shimMount `json:"mounts"`
	// StartErrorFile receives the message when the start fails.
	StartErrorFile string `json:"startErrorFile"`
}

type shimMount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

func init() {
	specPath := os.Getenv(shimEnv)
	if specPath == "" {
		return
	}
	shimMain(specPath)
}

func shimMain(specPath string) {
	data, err := os.ReadFile(specPath)
	if err != nil {
		shimFail("", "read spec: %v", err)
	}
	var spec shimSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		shimFail("", "decode spec: %v", err)
	}
	if err := shimSetup(&spec); err != nil {
		shimFail(spec.StartErrorFile, "%v", err)
	}
}

func shimFail(errFile, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(os.Stderr, "podrunner: start container: %s\n", msg)
	if errFile != "" {
		_ = os.WriteFile(errFile, []byte(msg), 0o600)
	}
	os.Exit(shimExitCode)
}

func shimSetup(spec *shimSpec) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	execPath := ""
	if spec.Binary != "" {
		// No O_CLOEXEC: the descriptor must survive exec so that a script's
		// interpreter can open /proc/self/fd/N too.
		fd, err := syscall.Open(spec.Binary, syscall.O_RDONLY, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", spec.Binary, err)
		}
		execPath = fmt.Sprintf("/proc/self/fd/%d", fd)
	}

	v := &view{root: spec.Root, kinds: map[string]entryKind{"/": kindSynthetic}}
	if err := v.makeRoot(); err != nil {
		return err
	}
	for _, m := range spec.Mounts {
		if err := v.mount(m); err != nil {
			return fmt.Errorf("mount %s at %s: %w", m.Source, m.Target, err)
		}
	}
	if err := pivot(spec.Root); err != nil {
		return err
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	if err := os.Chdir(dir); err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if execPath == "" {
		p, err := lookPath(spec.Argv[0], spec.Env)
		if err != nil {
			return err
		}
		execPath = p
	}
	err := syscall.Exec(execPath, spec.Argv, spec.Env)
	return fmt.Errorf("exec %q: %w", spec.Argv[0], err)
}

type entryKind int

const (
	// kindHost is a bind mount of the host path of the same name.
	kindHost entryKind = iota + 1
	// kindSynthetic lives in a tmpfs of this namespace.
	kindSynthetic
	// kindVolume is a pod volume.
	kindVolume
)

// view builds the container's filesystem under root, in the shim's private
// mount namespace.
type view struct {
	root  string
	kinds map[string]entryKind // container path -> what backs it
}

func (v *view) host(p string) string { return filepath.Join(v.root, p) }

func (v *view) makeRoot() error {
	if err := unix.Mount("tmpfs", v.root, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	return v.populate("/")
}

// populate fills the (empty, synthetic) directory dir with bind mounts of the
// entries of the host directory of the same path.
func (v *view) populate(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		src := filepath.Join(dir, e.Name())
		dst := v.host(src)
		fi, err := os.Lstat(src)
		if err != nil {
			continue
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				continue
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
		case fi.IsDir():
			if err := os.Mkdir(dst, fi.Mode().Perm()); err != nil {
				return err
			}
			if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				// Not fatal: an entry the kernel refuses to bind stays an
				// empty directory.
				continue
			}
		default:
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			_ = f.Close()
			if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				_ = os.Remove(dst)
				continue
			}
		}
		v.kinds[src] = kindHost
	}
	return nil
}

// backing returns what backs container path p: the kind of its nearest
// recorded ancestor (or itself).
func (v *view) backing(p string) entryKind {
	for {
		if k, ok := v.kinds[p]; ok {
			return k
		}
		if p == "/" {
			return kindSynthetic
		}
		p = filepath.Dir(p)
	}
}

// explode replaces the host-backed directory dir by a tmpfs holding bind
// mounts of its entries, so that new entries can be made in it.
func (v *view) explode(dir string) error {
	fi, err := os.Stat(v.host(dir))
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	// The host directory of the same path has the same entries as the bind
	// mount in the view, and stays readable after the tmpfs covers the view.
	mode := uint32(fi.Mode().Perm())
	if fi.Mode()&os.ModeSticky != 0 {
		mode |= 0o1000
	}
	if err := unix.Mount("tmpfs", v.host(dir), "tmpfs", 0, fmt.Sprintf("mode=%o", mode)); err != nil {
		return fmt.Errorf("mount tmpfs over %s: %w", dir, err)
	}
	v.kinds[dir] = kindSynthetic
	return v.populate(dir)
}

func (v *view) mount(m shimMount) error {
	src, err := os.Stat(m.Source)
	if err != nil {
		return err
	}
	target, err := v.resolve(m.Target)
	if err != nil {
		return err
	}
	if err := v.ensure(target, src.IsDir()); err != nil {
		return err
	}
	dst := v.host(target)
	if err := unix.Mount(m.Source, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if m.ReadOnly {
		if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("remount read-only: %w", err)
		}
	}
	v.kinds[target] = kindVolume
	// Mounts under this path made earlier are hidden now.
	for p := range v.kinds {
		if strings.HasPrefix(p, target+"/") {
			delete(v.kinds, p)
		}
	}
	return nil
}

// ensure makes container path p exist (a directory, or an empty file when
// dir is false) without changing anything on the host.
func (v *view) ensure(p string, dir bool) error {
	if _, err := os.Lstat(v.host(p)); err == nil {
		return nil
	}
	// The deepest existing ancestor.
	anc := filepath.Dir(p)
	for {
		if _, err := os.Lstat(v.host(anc)); err == nil {
			break
		}
		anc = filepath.Dir(anc)
	}
	if v.backing(anc) == kindHost {
		if err := v.explode(anc); err != nil {
			return err
		}
	}
	// Below anc everything is synthetic or inside a volume.
	if dir {
		return os.MkdirAll(v.host(p), 0o755)
	}
	if err := os.MkdirAll(v.host(filepath.Dir(p)), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(v.host(p), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// resolve follows symbolic links in container path p as the container would
// see them (absolute links are taken from the view's root). Components that
// do not exist are kept as they are.
func (v *view) resolve(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("mount path %q is not absolute", p)
	}
	rest := strings.Split(filepath.Clean(p), "/")[1:]
	cur := "/"
	hops := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(v.host(next))
		if err != nil {
			// Missing: the remainder is taken literally.
			return filepath.Join(append([]string{next}, rest...)...), nil
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		hops++
		if hops > 40 {
			return "", fmt.Errorf("too many symbolic links in %q", p)
		}
		link, err := os.Readlink(v.host(next))
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(link) {
			cur = "/"
		}
		rest = append(strings.Split(link, "/"), rest...)
	}
	return cur, nil
}

func pivot(root string) error {
	if err := os.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		// pivot_root refuses a current root that is not a mount point (as
		// in a chroot); chroot does for a process that never leaves.
		if cerr := unix.Chroot("."); cerr != nil {
			return fmt.Errorf("pivot_root: %v; chroot: %w", err, cerr)
		}
		return os.Chdir("/")
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return os.Chdir("/")
}

// lookPath finds name in the PATH of the container's environment.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			path = kv[len("PATH="):]
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

// sortMounts orders mounts so that a mount path comes after its parents.
func sortMounts(ms []shimMount) {
	depth := func(p string) int { return strings.Count(filepath.Clean(p), "/") }
	sort.SliceStable(ms, func(i, j int) bool { return depth(ms[i].Target) < depth(ms[j].Target) })
}
