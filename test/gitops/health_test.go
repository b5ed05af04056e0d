package gitops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
	"github.com/backstop-io/backstop/test/cluster"
)

const namespace = "gitops"

// phase is one state an object can be in, as the operator writes it, and
// how kstatus and Argo CD must judge it.
type phase struct {
	name string
	// spec changes the spec before the status is written (suspend, say).
	spec func(obj conditions.Object)
	// status writes the status the way the controllers do; nil leaves the
	// object as created, with no status at all.
	status func(obj conditions.Object)
	// after changes the spec once the status is written, so that the
	// status describes an older generation.
	after   func(obj conditions.Object)
	kstatus status.Status
	argo    string
}

func ready(obj conditions.Object) {
	conditions.MarkReady(obj, backstopv1alpha1.ReasonSucceeded, "ready")
}

func reconciling(obj conditions.Object) {
	conditions.MarkReconciling(obj, backstopv1alpha1.ReasonProgressing, "working on it")
}

func stalled(obj conditions.Object) {
	conditions.MarkStalled(obj, backstopv1alpha1.ReasonSecretNotFound, "Secret creds not found")
}

func failedRetrying(obj conditions.Object) {
	conditions.MarkFailed(obj, backstopv1alpha1.ReasonStoreUnreachable, "dial tcp: connection refused")
}

// configPhases are the phases of BackupStore, BackupTarget and BackupSchedule.
func configPhases(bump func(conditions.Object)) []phase {
	return []phase{
		// kstatus cannot tell a new object without status from a current one;
		// Argo CD's check waits for the operator.
		{name: "no status yet", kstatus: status.CurrentStatus, argo: "Progressing"},
		{name: "ready", status: ready, kstatus: status.CurrentStatus, argo: "Healthy"},
		{name: "reconciling", status: reconciling, kstatus: status.InProgressStatus, argo: "Progressing"},
		{name: "stalled", status: stalled, kstatus: status.FailedStatus, argo: "Degraded"},
		{name: "not ready, retrying", status: failedRetrying, kstatus: status.InProgressStatus, argo: "Progressing"},
		{name: "generation not observed", status: ready, after: bump, kstatus: status.InProgressStatus, argo: "Progressing"},
	}
}

func setPhase[P ~string](p *P, v P) { *p = v }

// runPhases are the phases of Backup and Restore.
func runPhases(setPhase func(conditions.Object, string), running []string) []phase {
	out := []phase{
		{name: "no status yet", kstatus: status.CurrentStatus, argo: "Progressing"},
		{name: "Succeeded", status: func(o conditions.Object) {
			setPhase(o, "Succeeded")
			conditions.MarkReady(o, backstopv1alpha1.ReasonSucceeded, "done")
		}, kstatus: status.CurrentStatus, argo: "Healthy"},
		{name: "Failed", status: func(o conditions.Object) {
			setPhase(o, "Failed")
			conditions.MarkStalled(o, backstopv1alpha1.ReasonDumpFailed, "pg_dump: connection refused")
		}, kstatus: status.FailedStatus, argo: "Degraded"},
		{name: "Pending", status: func(o conditions.Object) {
			setPhase(o, "Pending")
			conditions.MarkReconciling(o, backstopv1alpha1.ReasonPending, "waiting for store minio to be Ready")
		}, kstatus: status.InProgressStatus, argo: "Progressing"},
	}
	for _, p := range running {
		out = append(out, phase{name: p, status: func(o conditions.Object) {
			setPhase(o, p)
			conditions.MarkReconciling(o, backstopv1alpha1.ReasonProgressing, "Job started")
		}, kstatus: status.InProgressStatus, argo: "Progressing"})
	}
	return out
}

// kinds are Backstop's kinds with their sample and phases.
func kinds() []struct {
	kind   string
	phases []phase
} {
	return []struct {
		kind   string
		phases []phase
	}{
		{"BackupStore", configPhases(func(o conditions.Object) {
			*o.(*backstopv1alpha1.BackupStore).Spec.Compression.Level++
		})},
		{"BackupTarget", configPhases(func(o conditions.Object) {
			*o.(*backstopv1alpha1.BackupTarget).Spec.Postgres.Port++
		})},
		{"BackupSchedule", append(configPhases(func(o conditions.Object) {
			o.(*backstopv1alpha1.BackupSchedule).Spec.Schedule = "45 3 * * *"
		}), phase{
			name: "suspended",
			spec: func(o conditions.Object) { o.(*backstopv1alpha1.BackupSchedule).Spec.Suspend = true },
			status: func(o conditions.Object) {
				conditions.MarkReady(o, backstopv1alpha1.ReasonSuspended, "suspended: no new backups start")
			},
			kstatus: status.CurrentStatus, argo: "Suspended",
		})},
		{"Backup", runPhases(func(o conditions.Object, p string) {
			setPhase(&o.(*backstopv1alpha1.Backup).Status.Phase, backstopv1alpha1.BackupPhase(p))
		}, []string{"Running"})},
		{"BackupDrill", runPhases(func(o conditions.Object, p string) {
			setPhase(&o.(*backstopv1alpha1.BackupDrill).Status.Phase, backstopv1alpha1.DrillPhase(p))
		}, []string{"Running"})},
		{"Restore", runPhases(func(o conditions.Object, p string) {
			setPhase(&o.(*backstopv1alpha1.Restore).Status.Phase, backstopv1alpha1.RestorePhase(p))
		}, []string{"Verifying", "Restoring"})},
	}
}

// setObservedGeneration stamps status.observedGeneration as the controllers do.
func setObservedGeneration(obj conditions.Object) {
	g := obj.GetGeneration()
	switch o := obj.(type) {
	case *backstopv1alpha1.BackupStore:
		o.Status.ObservedGeneration = g
	case *backstopv1alpha1.BackupTarget:
		o.Status.ObservedGeneration = g
	case *backstopv1alpha1.BackupSchedule:
		o.Status.ObservedGeneration = g
	case *backstopv1alpha1.Backup:
		o.Status.ObservedGeneration = g
	case *backstopv1alpha1.Restore:
		o.Status.ObservedGeneration = g
	case *backstopv1alpha1.BackupDrill:
		o.Status.ObservedGeneration = g
	default:
		panic(fmt.Sprintf("%T", obj))
	}
}

// samples decodes config/samples into typed objects by kind.
func samples(t *testing.T, root string, scheme *runtime.Scheme) map[string]conditions.Object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "backstop_*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	out := map[string]conditions.Object{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj, gvk, err := decoder.Decode(data, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		o, ok := obj.(conditions.Object)
		if !ok {
			t.Fatalf("%s: %T has no conditions", f, obj)
		}
		out[gvk.Kind] = o
	}
	return out
}

// TestHealth_KstatusAndArgoCD writes each kind's status in each phase
// through the status subresource of a real API server, reads the object
// back, and checks what kstatus and the Argo CD health check make of it.
func TestHealth_KstatusAndArgoCD(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(backstopv1alpha1.AddToScheme(scheme))
	c := cluster.Start(t, cluster.Options{CRDDirectoryPaths: []string{"config/crd/bases"}, Scheme: scheme})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	byKind := samples(t, c.RepoRoot, scheme)

	for _, k := range kinds() {
		sample, ok := byKind[k.kind]
		if !ok {
			t.Fatalf("no sample of %s in config/samples", k.kind)
		}
		script, err := healthScript(c.RepoRoot, k.kind)
		if err != nil {
			t.Fatalf("Argo CD health check of %s: %v", k.kind, err)
		}
		for i, p := range k.phases {
			t.Run(k.kind+"/"+p.name, func(t *testing.T) {
				obj := sample.DeepCopyObject().(conditions.Object)
				obj.SetNamespace(namespace)
				obj.SetName(fmt.Sprintf("%s-%d", strings.ToLower(k.kind), i))
				if p.spec != nil {
					p.spec(obj)
				}
				if err := c.Client.Create(ctx, obj); err != nil {
					t.Fatal(err)
				}
				if p.status != nil {
					p.status(obj)
					setObservedGeneration(obj)
					if err := c.Client.Status().Update(ctx, obj); err != nil {
						t.Fatal(err)
					}
				}
				if p.after != nil {
					p.after(obj)
					if err := c.Client.Update(ctx, obj); err != nil {
						t.Fatal(err)
					}
				}

				gvk, err := apiutil.GVKForObject(obj, scheme)
				if err != nil {
					t.Fatal(err)
				}
				u := &unstructured.Unstructured{}
				u.SetGroupVersionKind(gvk)
				if err := c.Client.Get(ctx, client.ObjectKeyFromObject(obj), u); err != nil {
					t.Fatal(err)
				}
				if p.after != nil {
					observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
					if u.GetGeneration() != observed+1 {
						t.Fatalf("generation %d, observed %d: the spec change did not bump the generation", u.GetGeneration(), observed)
					}
				}

				res, err := status.Compute(u)
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != p.kstatus {
					t.Errorf("kstatus: %s (%s), want %s", res.Status, res.Message, p.kstatus)
				}
				h, err := runHealthScript(script, u.Object)
				if err != nil {
					t.Fatal(err)
				}
				if h.Status != p.argo {
					t.Errorf("Argo CD: %s (%s), want %s", h.Status, h.Message, p.argo)
				}
				t.Logf("kstatus %s %q; Argo CD %s %q", res.Status, res.Message, h.Status, h.Message)
			})
		}
	}
}
