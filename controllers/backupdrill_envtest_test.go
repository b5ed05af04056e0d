package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/agent"
)

// drillRig runs the BackupDrill controller in a manager on the real API
// server (no Job controller: the test ends Jobs by hand, with the pod and
// termination message a finished agent leaves), and drives the Backup
// controller's verification by hand.
type drillRig struct {
	t       *testing.T
	c       client.Client
	ns      string
	events  *eventLog
	backupR *BackupReconciler
}

func newDrillRig(t *testing.T, maxDrills int) *drillRig {
	t.Helper()
	return newRig(t, func(mgr ctrl.Manager, g *drillRig, agentOpts AgentOptions) error {
		g.backupR = &BackupReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: g.events, Clock: clocktesting.NewFakeClock(time.Now()), Agent: agentOpts}
		return (&BackupDrillReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: g.events, Agent: agentOpts, MaxConcurrentDrills: maxDrills}).SetupWithManager(mgr)
	})
}

// newRig starts a manager in a namespace of its own, with the field indexes
// and the controllers that setup registers.
func newRig(t *testing.T, setup func(mgr ctrl.Manager, g *drillRig, agentOpts AgentOptions) error) *drillRig {
	t.Helper()
	cl := realCluster(t)
	ns := testNamespace(t, cl.Client)
	g := &drillRig{t: t, c: cl.Client, ns: ns, events: &eventLog{}}
	agentOpts := DefaultAgentOptions()
	agentOpts.Image = fakeAgentImage
	startManager(t, cl.Config, ns, nil, func(mgr ctrl.Manager) error {
		if err := indexSpecRefs(context.Background(), mgr.GetFieldIndexer()); err != nil {
			return err
		}
		return setup(mgr, g, agentOpts)
	})
	return g
}

func (g *drillRig) create(objs ...client.Object) {
	g.t.Helper()
	for _, o := range objs {
		o.SetNamespace(g.ns)
		if err := g.c.Create(context.Background(), o); err != nil {
			g.t.Fatal(err)
		}
	}
}

// markReady writes Ready=True as the store and target controllers would.
func (g *drillRig) markReady(obj interface {
	client.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}) {
	g.t.Helper()
	obj.SetConditions([]metav1.Condition{{Type: backstopv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: backstopv1alpha1.ReasonSucceeded,
		Message: "ok", ObservedGeneration: obj.GetGeneration(), LastTransitionTime: metav1.Now()}})
	if err := g.c.Status().Update(context.Background(), obj); err != nil {
		g.t.Fatal(err)
	}
}

// store creates a Ready volume store; identity says whether it holds the
// private identity.
func (g *drillRig) store(name string, identity bool) {
	g.t.Helper()
	rec := &backstopv1alpha1.AgeRecipients{PublicKeys: []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}}
	if identity {
		rec.IdentitySecretRef = &backstopv1alpha1.SecretKeySelector{Name: "age-identity", Key: "identity.txt"}
	}
	bs := &backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: backstopv1alpha1.BackupStoreSpec{
			Volume:     &backstopv1alpha1.VolumeStore{ClaimName: "backups"},
			Encryption: backstopv1alpha1.Encryption{Recipients: rec},
		},
	}
	g.create(bs)
	g.markReady(bs)
}

// postgresTarget creates a Ready PostgreSQL target with drill checks.
func (g *drillRig) postgresTarget(name string, checks ...backstopv1alpha1.DrillCheck) *backstopv1alpha1.BackupTarget {
	g.t.Helper()
	bt := &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: backstopv1alpha1.BackupTargetSpec{
			Postgres: &backstopv1alpha1.PostgresTarget{
				DatabaseConnection: backstopv1alpha1.DatabaseConnection{Host: name, Credentials: backstopv1alpha1.DatabaseCredentials{
					Username: "app", PasswordSecretRef: backstopv1alpha1.SecretKeySelector{Name: name, Key: "password"}}},
				Database: "app",
			},
			DrillChecks: checks,
		},
	}
	g.create(bt)
	g.markReady(bt)
	return bt
}

// backup creates a Backup of target in store and moves it to phase, as the
// Backup controller would have.
func (g *drillRig) backup(name, target, store string, phase backstopv1alpha1.BackupPhase) *backstopv1alpha1.Backup {
	g.t.Helper()
	bk := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: backstopv1alpha1.BackupSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: target},
			StoreRef:  backstopv1alpha1.LocalObjectReference{Name: store},
		},
	}
	g.create(bk)
	now := metav1.Now()
	bk.Status = backstopv1alpha1.BackupStatus{Phase: phase, Engine: "postgres", ArtifactPath: g.ns + "/" + target + "/" + name, CompletionTime: &now}
	if phase == backstopv1alpha1.BackupFailed {
		bk.Status.Reason = backstopv1alpha1.ReasonDumpFailed
	}
	if err := g.c.Status().Update(context.Background(), bk); err != nil {
		g.t.Fatal(err)
	}
	return bk
}

func (g *drillRig) drill(name, backup string, mut func(*backstopv1alpha1.BackupDrillSpec)) *backstopv1alpha1.BackupDrill {
	g.t.Helper()
	dr := &backstopv1alpha1.BackupDrill{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       backstopv1alpha1.BackupDrillSpec{BackupRef: backstopv1alpha1.LocalObjectReference{Name: backup}},
	}
	if mut != nil {
		mut(&dr.Spec)
	}
	g.create(dr)
	return dr
}

func (g *drillRig) getDrill(name string) *backstopv1alpha1.BackupDrill {
	g.t.Helper()
	dr := &backstopv1alpha1.BackupDrill{}
	if err := g.c.Get(context.Background(), client.ObjectKey{Namespace: g.ns, Name: name}, dr); err != nil {
		g.t.Fatal(err)
	}
	return dr
}

// waitDrill waits until the drill satisfies ok.
func (g *drillRig) waitDrill(name string, ok func(*backstopv1alpha1.BackupDrill) error) *backstopv1alpha1.BackupDrill {
	g.t.Helper()
	var dr *backstopv1alpha1.BackupDrill
	eventually(g.t, 30*time.Second, func() error {
		dr = g.getDrill(name)
		return ok(dr)
	})
	return dr
}

func inPhase(p backstopv1alpha1.DrillPhase) func(*backstopv1alpha1.BackupDrill) error {
	return func(dr *backstopv1alpha1.BackupDrill) error {
		if dr.Status.Phase != p {
			return fmt.Errorf("BackupDrill %s is %q, want %q: %+v", dr.Name, dr.Status.Phase, p, readyOf(dr))
		}
		return nil
	}
}

// drillJobs lists the drill Jobs of the namespace.
func (g *drillRig) drillJobs() []batchv1.Job {
	g.t.Helper()
	jobs := &batchv1.JobList{}
	if err := g.c.List(context.Background(), jobs, client.InNamespace(g.ns), client.MatchingLabels{LabelComponent: "drill-agent"}); err != nil {
		g.t.Fatal(err)
	}
	return jobs.Items
}

// finishJob ends a Job as the Job controller would after the agent wrote res
// to its termination log.
func (g *drillRig) finishJob(name string, res agent.Result) {
	g.t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-pod", Namespace: g.ns, Labels: map[string]string{batchv1.JobNameLabel: name}},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "agent", Image: fakeAgentImage}}},
	}
	if err := g.c.Create(ctx, pod); err != nil {
		g.t.Fatal(err)
	}
	exit := int32(0)
	if res.Phase != agent.PhaseSucceeded {
		exit = 1
	}
	pod.Status.Phase = corev1.PodSucceeded
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "agent", Image: fakeAgentImage, State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Message: string(res.Encode()), Reason: "Completed"}}}}
	if err := g.c.Status().Update(ctx, pod); err != nil {
		g.t.Fatal(err)
	}
	job := &batchv1.Job{}
	if err := g.c.Get(ctx, client.ObjectKey{Namespace: g.ns, Name: name}, job); err != nil {
		g.t.Fatal(err)
	}
	now := metav1.Now()
	job.Status.StartTime = &now
	if res.Phase == agent.PhaseSucceeded {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &now
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	} else {
		job.Status.Failed = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, LastTransitionTime: now},
		}
	}
	if err := g.c.Status().Update(ctx, job); err != nil {
		g.t.Fatal(err)
	}
}

// verifyBackup runs the Backup controller's reconcile of a finished Backup
// and returns the Backup.
func (g *drillRig) verifyBackup(name string) *backstopv1alpha1.Backup {
	g.t.Helper()
	var bk *backstopv1alpha1.Backup
	// The Backup controller reads drills from its cache, which may trail.
	eventually(g.t, 10*time.Second, func() error {
		if _, err := g.backupR.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: g.ns, Name: name}}); err != nil {
			return err
		}
		bk = &backstopv1alpha1.Backup{}
		if err := g.c.Get(context.Background(), client.ObjectKey{Namespace: g.ns, Name: name}, bk); err != nil {
			return err
		}
		if c := conditionOf(bk, backstopv1alpha1.ConditionVerified); c == nil || c.Status == metav1.ConditionUnknown {
			return fmt.Errorf("Backup %s: Verified is %+v", name, c)
		}
		return nil
	})
	return bk
}

func drillReport(checks ...agent.CheckResult) *agent.DrillReport {
	return &agent.DrillReport{Checks: checks, RestoreSeconds: 12.5, Tables: 4, Rows: 1200, Server: "PostgreSQL 17.2"}
}

// TestBackupDrillReconciler_Refusals: a drill that cannot run fails at once
// with reason InvalidSpec and a message naming what is wrong, runs no Job,
// and says so in a Warning event.
func TestBackupDrillReconciler_Refusals(t *testing.T) {
	g := newDrillRig(t, 1)
	g.store("keyed", true)
	g.store("public-only", false)
	g.postgresTarget("orders")
	g.postgresTarget("orders-scratch")
	g.postgresTarget("orders-copy")
	mysql := &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-scratch"},
		Spec: backstopv1alpha1.BackupTargetSpec{MySQL: &backstopv1alpha1.MySQLTarget{
			DatabaseConnection: backstopv1alpha1.DatabaseConnection{Host: "shop", Credentials: backstopv1alpha1.DatabaseCredentials{
				Username: "app", PasswordSecretRef: backstopv1alpha1.SecretKeySelector{Name: "shop", Key: "password"}}},
			Databases: []string{"shop"},
		}},
	}
	g.create(mysql)
	g.markReady(mysql)
	g.create(&backstopv1alpha1.BackupSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: "copy-nightly"},
		Spec: backstopv1alpha1.BackupScheduleSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: "orders-copy"},
			StoreRef: backstopv1alpha1.LocalObjectReference{Name: "keyed"}, Schedule: "@daily"},
	})
	g.backup("good", "orders", "keyed", backstopv1alpha1.BackupSucceeded)
	g.backup("broken", "orders", "keyed", backstopv1alpha1.BackupFailed)
	g.backup("sealed", "orders", "public-only", backstopv1alpha1.BackupSucceeded)
	g.postgresTarget("checked", backstopv1alpha1.DrillCheck{Name: "rows", SQL: "SELECT count(*) > 0 FROM orders", Expect: "t"})
	g.backup("checked-bk", "checked", "keyed", backstopv1alpha1.BackupSucceeded)
	files := g.backup("files-bk", "uploads", "keyed", backstopv1alpha1.BackupSucceeded)
	files.Status.Engine = "files"
	if err := g.c.Status().Update(context.Background(), files); err != nil {
		t.Fatal(err)
	}
	withCheck := func(s *backstopv1alpha1.BackupDrillSpec) {
		s.Checks = []backstopv1alpha1.DrillCheck{{Name: "rows", SQL: "SELECT 1", Expect: "1"}}
	}

	scratch := func(name string) func(*backstopv1alpha1.BackupDrillSpec) {
		return func(s *backstopv1alpha1.BackupDrillSpec) {
			s.ScratchTargetRef = &backstopv1alpha1.LocalObjectReference{Name: name}
		}
	}
	for _, tc := range []struct {
		name, backup string
		mut          func(*backstopv1alpha1.BackupDrillSpec)
		want         string
	}{
		{"missing-backup", "nope", nil, `Backup "nope" not found`},
		{"failed-backup", "broken", nil, `Backup "broken" failed (DumpFailed); only a Succeeded Backup can be drilled`},
		{"no-identity", "sealed", nil, "BackupStore public-only encrypts to public keys and has no encryption.recipients.identitySecretRef"},
		{"scheduled-scratch", "good", scratch("orders-copy"), "scratchTargetRef orders-copy is backed up by BackupSchedule copy-nightly"},
		{"production-scratch", "good", scratch("orders"), "scratchTargetRef orders is the target Backup good was taken of"},
		{"other-engine-scratch", "good", scratch("shop-scratch"), "scratchTargetRef shop-scratch is a mysql target, and Backup good is a postgres backup"},
		{"check-named-twice", "checked-bk", withCheck, `check "rows" is defined both by BackupTarget checked (drillChecks) and by this drill`},
		{"sql-on-files", "files-bk", withCheck, `Backup "files-bk" is a files backup: SQL checks (rows) cannot run on it`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.t = t
			g.drill(tc.name, tc.backup, tc.mut)
			dr := g.waitDrill(tc.name, inPhase(backstopv1alpha1.DrillFailed))
			ready := readyOf(dr)
			if dr.Status.Reason != backstopv1alpha1.ReasonInvalidSpec || ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != backstopv1alpha1.ReasonInvalidSpec {
				t.Errorf("reason %q, Ready %+v; want InvalidSpec", dr.Status.Reason, ready)
			}
			if !strings.Contains(dr.Status.Message, tc.want) || !strings.Contains(ready.Message, tc.want) {
				t.Errorf("message %q does not say %q", dr.Status.Message, tc.want)
			}
			if c := conditionOf(dr, backstopv1alpha1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
				t.Errorf("Stalled is %+v, want True", c)
			}
			if dr.Status.JobName != "" {
				t.Errorf("jobName %q, want none", dr.Status.JobName)
			}
			eventually(t, 5*time.Second, func() error {
				for _, ev := range g.events.withReason(ReasonDrillFailed) {
					if ev.Regarding == tc.name && ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Note, tc.want) {
						return nil
					}
				}
				return fmt.Errorf("no DrillFailed Warning event on %s", tc.name)
			})
		})
	}
	g.t = t
	// A drill of a Backup still running waits for it, and says so.
	g.backup("running", "orders", "keyed", backstopv1alpha1.BackupRunning)
	g.drill("of-running", "running", nil)
	g.waitDrill("of-running", func(dr *backstopv1alpha1.BackupDrill) error {
		if c := readyOf(dr); dr.Status.Phase != backstopv1alpha1.DrillPending || c == nil || c.Status != metav1.ConditionUnknown || c.Message != "waiting for Backup running to finish" {
			return fmt.Errorf("phase %q, Ready %+v", dr.Status.Phase, c)
		}
		return nil
	})
	// The scratch target that is fine gets a Job; the refused ones none.
	g.drill("fine-scratch", "good", scratch("orders-scratch"))
	g.waitDrill("fine-scratch", inPhase(backstopv1alpha1.DrillRunning))
	jobs := g.drillJobs()
	if len(jobs) != 1 || jobs[0].Labels[LabelDrill] != "fine-scratch" {
		var names []string
		for _, j := range jobs {
			names = append(names, j.Name)
		}
		t.Fatalf("drill Jobs %v, want only the one of fine-scratch", names)
	}
	args := jobs[0].Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--into-target") || !containsPair(args, "--host", "orders-scratch") {
		t.Errorf("a drill into a scratch target runs with %v, want --into-target and the scratch target's host", args)
	}
}

func containsPair(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

// TestBackupDrillReconciler_ConcurrencyBound: with --max-concurrent-drills
// 1, of two drills one runs and the other stays Pending, saying it waits for
// a drill slot and naming the Job that holds it, until that one ends.
func TestBackupDrillReconciler_ConcurrencyBound(t *testing.T) {
	g := newDrillRig(t, 1)
	g.store("keyed", true)
	g.postgresTarget("orders")
	g.backup("mon", "orders", "keyed", backstopv1alpha1.BackupSucceeded)
	g.backup("tue", "orders", "keyed", backstopv1alpha1.BackupSucceeded)
	g.drill("drill-mon", "mon", nil)
	g.drill("drill-tue", "tue", nil)

	var running, waiting string
	eventually(t, 30*time.Second, func() error {
		a, b := g.getDrill("drill-mon"), g.getDrill("drill-tue")
		switch {
		case a.Status.Phase == backstopv1alpha1.DrillRunning && b.Status.Phase == backstopv1alpha1.DrillPending:
			running, waiting = a.Name, b.Name
		case b.Status.Phase == backstopv1alpha1.DrillRunning && a.Status.Phase == backstopv1alpha1.DrillPending:
			running, waiting = b.Name, a.Name
		default:
			return fmt.Errorf("phases %q and %q, want one Running and one Pending", a.Status.Phase, b.Status.Phase)
		}
		msg := ""
		if c := readyOf(g.getDrill(waiting)); c != nil {
			msg = c.Message
		}
		if !strings.Contains(msg, "waiting for a drill slot") || !strings.Contains(msg, jobName(running, "drill")) || !strings.Contains(msg, "--max-concurrent-drills=1") {
			return fmt.Errorf("the waiting drill says %q", msg)
		}
		return nil
	})
	// It stays so: never two drill Jobs at once.
	time.Sleep(2 * waitRequeue)
	if n := len(g.drillJobs()); n != 1 {
		t.Fatalf("%d drill Jobs exist while one runs, want 1", n)
	}
	if p := g.getDrill(waiting).Status.Phase; p != backstopv1alpha1.DrillPending {
		t.Fatalf("the waiting drill is %s", p)
	}

	g.finishJob(jobName(running, "drill"), agent.Result{Phase: agent.PhaseSucceeded, Drill: drillReport(agent.CheckResult{Name: "integrity", Passed: true})})
	g.waitDrill(running, inPhase(backstopv1alpha1.DrillSucceeded))
	g.waitDrill(waiting, inPhase(backstopv1alpha1.DrillRunning))
	if n := len(g.drillJobs()); n != 2 {
		t.Fatalf("%d drill Jobs, want 2 (one finished, one running)", n)
	}
}

// TestBackupDrillReconciler_VerifiedFromJobResult: the drill Job is built
// like a restore Job with the drill's scratch space, deadline and checks
// (the target's first); its report becomes the drill's status, and the
// Backup's Verified condition and verification follow the newest finished
// drill, with Verified and DrillFailed events on drill and Backup.
func TestBackupDrillReconciler_VerifiedFromJobResult(t *testing.T) {
	g := newDrillRig(t, 1)
	g.store("keyed", true)
	g.postgresTarget("orders", backstopv1alpha1.DrillCheck{Name: "has-orders", SQL: "SELECT count(*) > 0 FROM orders", Expect: "t"})
	g.backup("mon", "orders", "keyed", backstopv1alpha1.BackupSucceeded)

	// Before any drill: Unknown, NotDrilled.
	if _, err := g.backupR.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: g.ns, Name: "mon"}}); err != nil {
		t.Fatal(err)
	}
	bk := &backstopv1alpha1.Backup{}
	if err := g.c.Get(context.Background(), client.ObjectKey{Namespace: g.ns, Name: "mon"}, bk); err != nil {
		t.Fatal(err)
	}
	if c := conditionOf(bk, backstopv1alpha1.ConditionVerified); c == nil || c.Status != metav1.ConditionUnknown || c.Reason != backstopv1alpha1.ReasonNotDrilled {
		t.Fatalf("Verified before a drill: %+v, want Unknown NotDrilled", c)
	}

	size := resource.MustParse("2Gi")
	g.drill("first", "mon", func(s *backstopv1alpha1.BackupDrillSpec) {
		s.Checks = []backstopv1alpha1.DrillCheck{{Name: "recent", SQL: "SELECT max(created_at) > now() - interval '2 days' FROM orders", Expect: "t"}}
		s.Timeout = &metav1.Duration{Duration: 20 * time.Minute}
		s.ScratchSize = &size
	})
	g.waitDrill("first", inPhase(backstopv1alpha1.DrillRunning))
	jobs := g.drillJobs()
	if len(jobs) != 1 {
		t.Fatalf("%d drill Jobs, want 1", len(jobs))
	}
	job := jobs[0]
	pod := job.Spec.Template.Spec
	args := pod.Containers[0].Args
	if args[0] != "drill" || !containsPair(args, "--artifact-path", g.ns+"/orders/mon") || !containsPair(args, "--engine", "postgres") ||
		!containsPair(args, "--scratch-dir", mountScratch) || !containsPair(args, "--scratch-size-limit", "2147483648") ||
		!containsPair(args, "--identity-file", mountIdentity+"/identity.txt") || !containsPair(args, "--timeout", "19m30s") {
		t.Errorf("drill args %v", args)
	}
	if slices.Contains(args, "--host") || slices.Contains(args, "--into-target") {
		t.Errorf("a drill into a throwaway server got the production target's connection: %v", args)
	}
	for _, e := range pod.Containers[0].Env {
		if e.Name == "BACKSTOP_DB_PASSWORD" {
			t.Errorf("a drill into a throwaway server got the production password")
		}
	}
	if d := job.Spec.ActiveDeadlineSeconds; d == nil || *d != 1200 {
		t.Errorf("activeDeadlineSeconds %v, want 1200", d)
	}
	var scratch *corev1.Volume
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == "scratch" {
			scratch = &pod.Volumes[i]
		}
	}
	if scratch == nil || scratch.EmptyDir == nil || scratch.EmptyDir.SizeLimit == nil || scratch.EmptyDir.SizeLimit.String() != "2Gi" {
		t.Errorf("scratch volume %+v, want an emptyDir limited to 2Gi", scratch)
	}
	if u := pod.SecurityContext.RunAsUser; u == nil || *u != agentUID {
		t.Errorf("runAsUser %v, want %d", u, agentUID)
	}
	var checks []drillCheckJSON
	for _, e := range pod.Containers[0].Env {
		if e.Name == envDrillChecks {
			if err := json.Unmarshal([]byte(e.Value), &checks); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(checks) != 2 || checks[0].Name != "has-orders" || checks[1].Name != "recent" || checks[0].Expect != "t" {
		t.Errorf("checks given to the agent %+v, want has-orders (the target's) then recent", checks)
	}

	g.finishJob(job.Name, agent.Result{Phase: agent.PhaseSucceeded, Engine: "postgres", Drill: drillReport(
		agent.CheckResult{Name: "integrity", Passed: true}, agent.CheckResult{Name: "tables", Passed: true},
		agent.CheckResult{Name: "has-orders", Passed: true}, agent.CheckResult{Name: "recent", Passed: true})})
	dr := g.waitDrill("first", inPhase(backstopv1alpha1.DrillSucceeded))
	if dr.Status.ChecksPassed != "4/4" || dr.Status.RestoreDuration == nil || dr.Status.RestoreDuration.Duration != 12500*time.Millisecond ||
		dr.Status.Tables != 4 || dr.Status.Rows != 1200 || dr.Status.Server != "PostgreSQL 17.2" || len(dr.Status.Checks) != 4 {
		t.Errorf("drill status %+v", dr.Status)
	}
	if c := readyOf(dr); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready %+v, want True", c)
	}

	bk = g.verifyBackup("mon")
	c := conditionOf(bk, backstopv1alpha1.ConditionVerified)
	if c.Status != metav1.ConditionTrue || c.Reason != backstopv1alpha1.ReasonDrillPassed || !strings.Contains(c.Message, "BackupDrill first") {
		t.Errorf("Verified %+v, want True DrillPassed naming the drill", c)
	}
	v := bk.Status.Verification
	if v == nil || v.DrillName != "first" || v.Passed != 4 || v.Failed != 0 || v.Rows != 1200 || v.Tables != 4 || v.Time == nil ||
		v.RestoreDuration == nil || v.RestoreDuration.Duration != 12500*time.Millisecond {
		t.Errorf("verification %+v", v)
	}

	// The target shows its newest verified Backup.
	targetR := &BackupTargetReconciler{Client: g.backupR.Client}
	lastVerified := func() (string, *metav1.Time) {
		t.Helper()
		if _, err := targetR.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: g.ns, Name: "orders"}}); err != nil {
			t.Fatal(err)
		}
		bt := &backstopv1alpha1.BackupTarget{}
		if err := g.c.Get(context.Background(), client.ObjectKey{Namespace: g.ns, Name: "orders"}, bt); err != nil {
			t.Fatal(err)
		}
		return bt.Status.LastVerifiedBackup, bt.Status.LastVerifiedTime
	}
	eventually(t, 10*time.Second, func() error {
		if name, at := lastVerified(); name != "mon" || at == nil || !at.Equal(v.Time) {
			return fmt.Errorf("target's lastVerifiedBackup %q at %v, want mon at %v", name, at, v.Time)
		}
		return nil
	})

	// A later drill whose user check fails: the Backup is no longer verified.
	g.drill("second", "mon", nil)
	g.waitDrill("second", inPhase(backstopv1alpha1.DrillRunning))
	g.finishJob(jobName("second", "drill"), agent.Result{Phase: agent.PhaseFailed, Reason: agent.ReasonCheckFailed, Message: "check has-orders: got f, want t",
		Drill: drillReport(agent.CheckResult{Name: "integrity", Passed: true}, agent.CheckResult{Name: "tables", Passed: true},
			agent.CheckResult{Name: "has-orders", Passed: false, Message: "got f, want t"})})
	dr = g.waitDrill("second", inPhase(backstopv1alpha1.DrillFailed))
	if dr.Status.Reason != backstopv1alpha1.ReasonCheckFailed || dr.Status.ChecksPassed != "2/3" || !strings.Contains(dr.Status.Message, "has-orders") {
		t.Errorf("failed drill status: reason %q, checks %q, message %q", dr.Status.Reason, dr.Status.ChecksPassed, dr.Status.Message)
	}
	eventually(t, 10*time.Second, func() error {
		if _, err := g.backupR.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: g.ns, Name: "mon"}}); err != nil {
			return err
		}
		if err := g.c.Get(context.Background(), client.ObjectKey{Namespace: g.ns, Name: "mon"}, bk); err != nil {
			return err
		}
		if c := conditionOf(bk, backstopv1alpha1.ConditionVerified); c.Status != metav1.ConditionFalse || c.Reason != backstopv1alpha1.ReasonCheckFailed {
			return fmt.Errorf("Verified %+v, want False CheckFailed", c)
		}
		return nil
	})
	if v := bk.Status.Verification; v.DrillName != "second" || v.Passed != 2 || v.Failed != 1 {
		t.Errorf("verification %+v, want the second drill's 2 passed and 1 failed", v)
	}

	eventually(t, 10*time.Second, func() error {
		if name, at := lastVerified(); name != "" || at != nil {
			return fmt.Errorf("target's lastVerifiedBackup %q at %v, want none once its drill failed", name, at)
		}
		return nil
	})

	want := []recordedEvent{
		{Regarding: "first", Type: corev1.EventTypeNormal, Reason: ReasonVerified},
		{Regarding: "mon", Related: "first", Type: corev1.EventTypeNormal, Reason: ReasonVerified},
		{Regarding: "second", Type: corev1.EventTypeWarning, Reason: ReasonDrillFailed},
		{Regarding: "mon", Related: "second", Type: corev1.EventTypeWarning, Reason: ReasonDrillFailed},
	}
	eventually(t, 5*time.Second, func() error {
		got := g.events.withReason(ReasonVerified, ReasonDrillFailed)
	next:
		for _, w := range want {
			for _, ev := range got {
				if ev.Regarding == w.Regarding && ev.Related == w.Related && ev.Type == w.Type && ev.Reason == w.Reason {
					continue next
				}
			}
			return fmt.Errorf("no event %+v among %+v", w, got)
		}
		return nil
	})
	for _, ev := range g.events.withReason(ReasonDrillFailed) {
		if ev.Regarding == "mon" && !strings.Contains(ev.Note, "has-orders") {
			t.Errorf("the Backup's DrillFailed event does not name the check: %q", ev.Note)
		}
	}
}
