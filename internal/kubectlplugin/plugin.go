// Package kubectlplugin is `kubectl backstop`: the backstop binary installed
// as kubectl-backstop (or run as `backstop <subcommand>`). It reads and
// creates Backstop objects with the user's kubeconfig; the operator does the
// work.
package kubectlplugin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// Commands are the subcommands of the plugin, as `backstop <command>` and
// `kubectl backstop <command>` take them.
var Commands = []string{"status", "backup", "restore", "describe", "logs", "suspend", "resume", "verify", "decrypt", "manifest", "completion"}

// IsCommand says whether name is a plugin subcommand (verify and decrypt
// included: without a Backup name they run as they always did).
func IsCommand(name string) bool {
	for _, c := range Commands {
		if c == name {
			return true
		}
	}
	return name == completeCommand
}

// IO is what a command reads and writes.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// StdinIsTerminal says whether a person can answer a question on Stdin.
	StdinIsTerminal bool
	// Getenv reads the environment (store credentials for verify and decrypt).
	Getenv func(string) string
}

// StdIO is the process's own standard streams.
func StdIO() IO {
	fi, err := os.Stdin.Stat()
	return IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		StdinIsTerminal: err == nil && fi.Mode()&os.ModeCharDevice != 0,
		Getenv:          os.Getenv,
	}
}

// usageText is the help of the plugin; prog is how it was called.
func usageText(prog string) string {
	return fmt.Sprintf(`%[1]s: Backstop backups from the command line.

Usage:
  %[1]s status [-n ns | -A] [-o json|yaml]    targets, last backup, next run, store health
  %[1]s backup <schedule|target> [--store s] [--wait]
                                               run a backup now
  %[1]s restore <backup> [--to target] [--safety-backup] [--lock-timeout d] [--wait] [--yes]
                                               replace a target's data with a backup
  %[1]s describe <backup|restore> [-o json|yaml]
  %[1]s logs <backup|restore>                  the agent pod's logs
  %[1]s suspend|resume <schedule>
  %[1]s verify|decrypt <backup> [flags]        check or decrypt a backup's artifact locally
  %[1]s manifest <backup>                      print the artifact's manifest.json from the store
  %[1]s completion bash|zsh

Flags every command takes:
  -n, --namespace ns    the namespace (default: the kubeconfig context's)
  --context name        the kubeconfig context
  --kubeconfig file     the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)
`, prog)
}

// Main runs one plugin command; prog is the name it was called by
// ("kubectl backstop" or "backstop"). It returns the exit code: 0 when all
// is well, 1 when something failed (or status found a failure), 2 for a
// usage error.
func Main(ctx context.Context, prog string, args []string, io IO) int {
	if io.Getenv == nil {
		io.Getenv = os.Getenv
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		w := io.Stdout
		code := 0
		if len(args) == 0 {
			w, code = io.Stderr, 2
		}
		fmt.Fprint(w, usageText(prog))
		return code
	}
	cmd, rest := args[0], args[1:]
	r := &runner{prog: prog, cmd: cmd, io: io}
	var err error
	switch cmd {
	case "status":
		err = r.status(ctx, rest)
	case "backup":
		err = r.backup(ctx, rest)
	case "restore":
		err = r.restore(ctx, rest)
	case "describe":
		err = r.describe(ctx, rest)
	case "logs":
		err = r.logs(ctx, rest)
	case "suspend", "resume":
		err = r.suspend(ctx, rest, cmd == "suspend")
	case "verify", "decrypt", "manifest":
		return r.tool(ctx, rest)
	case "completion":
		err = r.completion(rest)
	case completeCommand:
		err = r.complete(ctx, rest)
	default:
		fmt.Fprintf(io.Stderr, "%s: unknown command %q\n\n%s", prog, cmd, usageText(prog))
		return 2
	}
	return r.exit(err)
}

// runner carries one command's streams and connection.
type runner struct {
	prog string
	cmd  string
	io   IO
	conn connFlags

	cfg *rest.Config
	c   client.Client
	ns  string
}

// usageError is a wrong command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// failedError is a command that ran and found a failure (status, a backup
// that failed): its output said why, exit code 1 with no more words.
type failedError struct{ msg string }

func (e failedError) Error() string { return e.msg }

func (r *runner) exit(err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(r.io.Stderr, "%s %s: %s\n", r.prog, r.cmd, ue.msg)
		return 2
	}
	var fe failedError
	if errors.As(err, &fe) {
		if fe.msg != "" {
			fmt.Fprintf(r.io.Stderr, "%s %s: %s\n", r.prog, r.cmd, fe.msg)
		}
		return 1
	}
	fmt.Fprintf(r.io.Stderr, "%s %s: %s\n", r.prog, r.cmd, oneLine(r.explain(err)))
	return 1
}

// explain turns an API error into words a user acts on.
func (r *runner) explain(err error) string {
	var se apierrors.APIStatus
	switch {
	case apierrors.IsForbidden(err) && errors.As(err, &se):
		return "no permission: " + se.Status().Message
	case apierrors.IsUnauthorized(err):
		return "not authenticated to the cluster (check your kubeconfig credentials): " + err.Error()
	case apierrors.IsNotFound(err) && errors.As(err, &se):
		d := se.Status().Details
		if d != nil && d.Name != "" {
			return fmt.Sprintf("%s %q not found in namespace %q", kindWord(d.Kind), d.Name, r.ns)
		}
		if strings.Contains(err.Error(), "the server could not find the requested resource") {
			return "the Backstop API (backstop.io/v1alpha1) is not installed in this cluster"
		}
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		host := ""
		if r.cfg != nil {
			host = " at " + r.cfg.Host
		}
		return fmt.Sprintf("cannot reach the cluster%s: %v", host, err)
	}
	return err.Error()
}

func kindWord(resource string) string {
	switch resource {
	case "backups":
		return "Backup"
	case "restores":
		return "Restore"
	case "backupschedules":
		return "BackupSchedule"
	case "backuptargets":
		return "BackupTarget"
	case "backupstores":
		return "BackupStore"
	case "pods":
		return "Pod"
	}
	return resource
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// connFlags are the kubeconfig flags every command takes.
type connFlags struct {
	namespace  string
	all        bool
	context    string
	kubeconfig string
	output     string
}

// flags makes a command's flag set with the connection flags; allNS adds
// -A, output adds -o.
func (r *runner) flags(allNS, output bool) *flag.FlagSet {
	fs := flag.NewFlagSet(r.prog+" "+r.cmd, flag.ContinueOnError)
	fs.SetOutput(r.io.Stderr)
	fs.StringVar(&r.conn.namespace, "namespace", "", "the namespace (default: the kubeconfig context's)")
	fs.StringVar(&r.conn.namespace, "n", "", "shorthand for --namespace")
	fs.StringVar(&r.conn.context, "context", "", "the kubeconfig context")
	fs.StringVar(&r.conn.kubeconfig, "kubeconfig", "", "the kubeconfig file")
	if allNS {
		fs.BoolVar(&r.conn.all, "all-namespaces", false, "every namespace")
		fs.BoolVar(&r.conn.all, "A", false, "shorthand for --all-namespaces")
	}
	if output {
		fs.StringVar(&r.conn.output, "output", "", "json or yaml: the data instead of a table")
		fs.StringVar(&r.conn.output, "o", "", "shorthand for --output")
	}
	return fs
}

// parse parses flags and positional arguments in any order, as kubectl
// does: `backup nightly --wait` and `backup --wait nightly` are the same.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseN parses and wants exactly n positional arguments, named in what.
func (r *runner) parseN(fs *flag.FlagSet, args []string, what ...string) ([]string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	if r.conn.output != "" && r.conn.output != "json" && r.conn.output != "yaml" {
		return nil, usagef("--output must be json or yaml, not %q", r.conn.output)
	}
	if len(pos) != len(what) {
		if len(pos) < len(what) {
			return nil, usagef("missing %s", strings.Join(what[len(pos):], " and "))
		}
		return nil, usagef("unexpected arguments: %s", strings.Join(pos[len(what):], " "))
	}
	return pos, nil
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(backstopv1alpha1.AddToScheme(s))
	return s
}

// connect loads the kubeconfig and makes the client.
func (r *runner) connect() error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if r.conn.kubeconfig != "" {
		rules.ExplicitPath = r.conn.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: r.conn.context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return errors.New("no cluster: no kubeconfig found (set --kubeconfig or KUBECONFIG)")
		}
		return fmt.Errorf("no cluster: %v", err)
	}
	ns := r.conn.namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil {
			return fmt.Errorf("no cluster: %v", err)
		}
	}
	cfg.UserAgent = "kubectl-backstop"
	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return fmt.Errorf("no cluster: %v", err)
	}
	r.cfg, r.c, r.ns = cfg, c, ns
	return nil
}

func (r *runner) clientset() (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(r.cfg)
}

func (r *runner) key(name string) client.ObjectKey {
	return client.ObjectKey{Namespace: r.ns, Name: name}
}

// ready is the Ready condition of conds, or nil.
func ready(conds []metav1.Condition) *metav1.Condition {
	return meta.FindStatusCondition(conds, backstopv1alpha1.ConditionReady)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
