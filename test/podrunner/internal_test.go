package podrunner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "x", "B": "y z"}
	for in, want := range map[string]string{
		"plain":          "plain",
		"$(A)":           "x",
		"$(A)-$(B)":      "x-y z",
		"$$(A)":          "$(A)",
		"$$":             "$",
		"$(MISSING)":     "$(MISSING)",
		"$(A":            "$(A",
		"cost $5":        "cost $5",
		"end$":           "end$",
		"echo $$$$ > /p": "echo $$ > /p",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImageName(t *testing.T) {
	for in, want := range map[string]string{
		"ghcr.io/backstop-io/backstop:dev":     "backstop",
		"backstop":                             "backstop",
		"localhost:5000/tools/sh":              "sh",
		"registry.example/a/b@sha256:abcdef00": "b",
		"registry.example/a/b:v1@sha256:abcd":  "b",
	} {
		if got := imageName(in); got != want {
			t.Errorf("imageName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCommand(t *testing.T) {
	build := t.TempDir()
	for _, name := range []string{"backstop-linux", "backstop-agent"} {
		if err := os.WriteFile(filepath.Join(build, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(build, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(build, "backstop-linux")
	r := &Runner{opts: Options{Images: map[string]string{"ghcr.io/backstop-io/backstop:dev": main}}}
	cases := []struct {
		name       string
		c          corev1.Container
		argv       string
		binary     string
		wantErrSub string
	}{
		{name: "entrypoint by image name", c: corev1.Container{Image: "ghcr.io/backstop-io/backstop:dev", Command: []string{"/backstop", "agent"}, Args: []string{"backup", "$(X)"}},
			argv: "/backstop agent backup 1", binary: main},
		{name: "entrypoint by binary name", c: corev1.Container{Image: "ghcr.io/backstop-io/backstop:dev", Command: []string{"backstop-linux"}},
			argv: "backstop-linux", binary: main},
		{name: "another binary of the image", c: corev1.Container{Image: "ghcr.io/backstop-io/backstop:dev", Command: []string{"/usr/local/bin/backstop-agent"}, Args: []string{"backup"}},
			argv: "/usr/local/bin/backstop-agent backup", binary: filepath.Join(build, "backstop-agent")},
		{name: "a directory next to the binary is not a binary", c: corev1.Container{Image: "ghcr.io/backstop-io/backstop:dev", Command: []string{"lib"}},
			argv: "lib"},
		{name: "no command", c: corev1.Container{Image: "ghcr.io/backstop-io/backstop:dev", Args: []string{"manager"}},
			argv: main + " manager", binary: main},
		{name: "other command", c: corev1.Container{Image: "ghcr.io/backstop-io/backstop:dev", Command: []string{"sh", "-c", "true"}},
			argv: "sh -c true"},
		{name: "unmapped", c: corev1.Container{Image: "busybox", Command: []string{"true"}}, wantErrSub: "not in the pod runner's image table"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			argv, bin, err := r.command(&tc.c, map[string]string{"X": "1"})
			if tc.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
					t.Fatalf("err = %v, want %q", err, tc.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(argv, " "); got != tc.argv || bin != tc.binary {
				t.Errorf("got %q, %q; want %q, %q", got, bin, tc.argv, tc.binary)
			}
		})
	}
	r.opts.AllowUnmappedImages = true
	argv, bin, err := r.command(&corev1.Container{Image: "busybox", Command: []string{"true"}}, nil)
	if err != nil || bin != "" || strings.Join(argv, " ") != "true" {
		t.Errorf("unmapped allowed: %q %q %v", argv, bin, err)
	}
}

func TestViewResolve(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "run", "secrets"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "var"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755))
	must(os.Symlink("/run", filepath.Join(root, "var", "run")))
	must(os.Symlink("usr/bin", filepath.Join(root, "bin")))
	must(os.Symlink("../../etc", filepath.Join(root, "usr", "bin", "up")))
	v := &view{root: root}
	for in, want := range map[string]string{
		"/var/run/secrets/token": "/run/secrets/token",
		"/bin/x":                 "/usr/bin/x",
		"/usr/bin/up/passwd":     "/etc/passwd",
		"/new/dir":               "/new/dir",
		"/run/secrets":           "/run/secrets",
		"/../../run":             "/run",
	} {
		got, err := v.resolve(in)
		if err != nil || got != want {
			t.Errorf("resolve(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := v.resolve("relative"); err == nil {
		t.Error("a relative mount path must be refused")
	}
}

func TestLogTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	b.WriteString("earlier attempt\n")
	offset := int64(b.Len())
	for i := 0; i < 100; i++ {
		b.WriteString("line\n")
	}
	b.WriteString("last\n")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got := logTail(p, offset)
	if lines := strings.Split(got, "\n"); len(lines) != fallbackLines || lines[len(lines)-1] != "last" {
		t.Errorf("tail has %d lines ending %q", len(lines), lines[len(lines)-1])
	}
	if strings.Contains(got, "earlier") {
		t.Error("tail reaches before the attempt")
	}
}
