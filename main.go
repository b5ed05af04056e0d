// Command backstop is Backstop's binary: the operator (`backstop manager`,
// the default), the agent (`backstop agent backup|restore|verify`), and the
// user commands: `backstop verify` and `backstop decrypt`, which work with no
// cluster, and the kubectl plugin's (`backstop status`, `backstop backup`,
// ...). Installed as kubectl-backstop, it is the plugin: `kubectl backstop`. Jobs run the same agent through cmd/backstop-agent, a lean entry
// point in the same image that leaves the operator out, so that a Job's
// memory is the data path's and not the operator libraries'.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/controllers"
	"github.com/backstop-io/backstop/internal/kubectlplugin"
	"github.com/backstop-io/backstop/internal/metricsauth"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `backstop: scheduled, encrypted, verifiable backups for Kubernetes.

Usage:
  backstop [manager] [flags]        run the operator (the default)
  backstop agent backup|restore|verify [flags]
                                    what backup and restore Jobs run
  backstop verify [<backup>] [flags]
                                    check a stored backup end to end
  backstop decrypt [<backup>] [flags]
                                    verify and write a backup's plaintext dump
  backstop manifest [<backup>] [flags]
                                    print a backup's manifest.json from its store
  backstop status|backup|restore|describe|logs|suspend|resume|completion
                                    the kubectl plugin's commands; installed as
                                    kubectl-backstop, this binary is
                                    "kubectl backstop" (run "backstop help-plugin")
  backstop version                  print the version
`

func main() {
	if isPlugin(os.Args[0]) {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		code := kubectlplugin.Main(ctx, "kubectl backstop", os.Args[1:], kubectlplugin.StdIO())
		stop()
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// isPlugin says whether the binary runs as kubectl-backstop, the name
// kubectl finds plugins by.
func isPlugin(arg0 string) bool {
	name := strings.TrimSuffix(filepath.Base(arg0), ".exe")
	return name == "kubectl-backstop"
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	command := "manager"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		command, args = args[0], args[1:]
	}
	switch command {
	case "manager":
		return runManager(ctx, args, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "help-plugin":
		return kubectlplugin.Main(ctx, "backstop", []string{"help"}, kubectlplugin.StdIO())
	default:
		if kubectlplugin.IsCommand(command) {
			io := kubectlplugin.StdIO()
			io.Stdout, io.Stderr = stdout, stderr
			return kubectlplugin.Main(ctx, "backstop", append([]string{command}, args...), io)
		}
		if code, ok := runTool(ctx, command, args, stdout, stderr); ok {
			return code
		}
		fmt.Fprintf(stderr, "backstop: unknown command %q\n\n%s", command, usage)
		return 2
	}
}

func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(backstopv1alpha1.AddToScheme(scheme))
	return scheme
}

func runManager(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		metricsAddr          string
		probeAddr            string
		pprofAddr            string
		secureMetrics        bool
		enableHTTP2          bool
		enableLeaderElection bool
		leaderElectionID     string
		leaderElectionNS     string
		watchNamespace       string
		agentImage           string
		agentPullPolicy      string
		concurrency          int
		maxConcurrentDrills  int
	)
	fs.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address the metrics endpoint binds to; 0 disables it.")
	fs.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, behind Kubernetes authentication and authorization.")
	fs.BoolVar(&enableHTTP2, "enable-http2", false, "Serve metrics over HTTP/2 too (off: HTTP/2 rapid-reset and stream-cancel CVEs).")
	fs.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	fs.StringVar(&pprofAddr, "pprof-bind-address", "0", "Address Go's pprof profiles are served on, without authentication (bind it to localhost); 0 disables them.")
	fs.BoolVar(&enableLeaderElection, "leader-elect", true, "Elect a leader so that only one replica reconciles.")
	fs.StringVar(&leaderElectionID, "leader-election-id", "backstop.backstop.io", "Name of the leader election Lease.")
	fs.StringVar(&leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease; defaults to the pod's own.")
	fs.StringVar(&watchNamespace, "watch-namespace", "", "Reconcile only this namespace; empty for all.")
	fs.StringVar(&agentImage, "agent-image", controllers.DefaultAgentOptions().Image, "Image of backup and restore Jobs: this operator's own image.")
	fs.StringVar(&agentPullPolicy, "agent-image-pull-policy", string(corev1.PullIfNotPresent), "Pull policy of the agent image.")
	fs.IntVar(&concurrency, "concurrency", 2, "How many objects of one kind are reconciled at once.")
	fs.IntVar(&maxConcurrentDrills, "max-concurrent-drills", 1, "How many restore drill Jobs run at once, in all watched namespaces; the others stay Pending.")
	opts := zap.Options{}
	opts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts), zap.WriteTo(stderr)))
	log := ctrl.Log.WithName("setup")

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       tlsOpts,
	}
	if secureMetrics {
		// Only callers the API server authenticates, and authorises for
		// GET /metrics, may read them.
		metricsOpts.FilterProvider = metricsauth.FilterProvider
	}

	mgrOpts := ctrl.Options{
		// Secrets are read when needed, never cached: the operator holds no
		// copy of every credential in the cluster.
		Client:                        client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Cache:                         controllers.CacheOptions(),
		Scheme:                        newScheme(),
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                enableLeaderElection,
		LeaderElectionID:              leaderElectionID,
		LeaderElectionNamespace:       leaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
	}
	if watchNamespace != "" {
		mgrOpts.Cache.DefaultNamespaces = map[string]cache.Config{watchNamespace: {}}
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), mgrOpts)
	if err != nil {
		log.Error(err, "Unable to create the manager")
		return 1
	}
	agentOpts := controllers.DefaultAgentOptions()
	agentOpts.Image = agentImage
	agentOpts.ImagePullPolicy = corev1.PullPolicy(agentPullPolicy)
	if err := setupControllers(ctx, mgr, controllers.Options{Agent: agentOpts, Concurrency: concurrency, MaxConcurrentDrills: maxConcurrentDrills}); err != nil {
		log.Error(err, "Unable to set up the controllers")
		return 1
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Unable to set up the health check")
		return 1
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "Unable to set up the readiness check")
		return 1
	}
	log.Info("Starting the manager", "version", version)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "The manager stopped with an error")
		return 1
	}
	return 0
}
