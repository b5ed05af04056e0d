package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/agent"
	"github.com/backstop-io/backstop/internal/conditions"
)

// Event reasons of a drill, sent on the BackupDrill and (by the Backup
// controller) on the Backup it verified.
const (
	// ReasonVerified: a drill restored the Backup and every check held.
	ReasonVerified = "Verified"
	// ReasonDrillFailed: a drill failed; the note says why.
	ReasonDrillFailed = "DrillFailed"
)

// Defaults of a drill when its spec leaves them out (the API server
// defaults them too).
const (
	defaultDrillTimeout = time.Hour
	defaultScratchSize  = "10Gi"
	// envDrillChecks carries the user checks to the agent, as JSON.
	envDrillChecks = "BACKSTOP_DRILL_CHECKS"
)

// BackupDrillReconciler runs a BackupDrill once: it checks the drill can
// run, waits for a free drill slot, runs the drill Job and records what the
// agent found. A finished drill never runs again. It writes only the
// BackupDrill's status: the Backup controller derives the Backup's
// Verified condition from the drills.
type BackupDrillReconciler struct {
	client.Client
	// Concurrency is how many objects are reconciled at once.
	Concurrency int
	// APIReader reads Pods past the cache.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Agent     AgentOptions
	// MaxConcurrentDrills is how many drill Jobs run at once, in all
	// namespaces this operator watches. Default 1.
	MaxConcurrentDrills int

	// slots serializes the count of running drill Jobs with the creation
	// of a new one, so that two reconciles never take the last slot both.
	slots sync.Mutex
	// created holds the drill Jobs this process created, by
	// namespace/name, until the cache shows them.
	created map[string]time.Time
}

// SetupWithManager registers the reconciler.
func (r *BackupDrillReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.MaxConcurrentDrills <= 0 {
		r.MaxConcurrentDrills = 1
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&backstopv1alpha1.BackupDrill{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&batchv1.Job{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Concurrency}).
		Named("backupdrill").
		Complete(r)
}

func drillFinal(p backstopv1alpha1.DrillPhase) bool {
	return p == backstopv1alpha1.DrillSucceeded || p == backstopv1alpha1.DrillFailed
}

// Reconcile moves one BackupDrill along: Pending -> Running -> Succeeded or Failed.
func (r *BackupDrillReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	dr := &backstopv1alpha1.BackupDrill{}
	if err := r.Get(ctx, req.NamespacedName, dr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !dr.DeletionTimestamp.IsZero() || drillFinal(dr.Status.Phase) {
		return ctrl.Result{}, nil
	}
	before := readySnapshot(dr)
	patch := newStatusPatch(dr)
	defer func() {
		dr.Status.ObservedGeneration = dr.Generation
		if _, perr := patch.write(ctx, r.Client, dr); perr != nil {
			if err == nil {
				err = perr
			}
			return
		}
		announceTransition(r.Recorder, dr, before, "Drill")
		// A drill in a final phase here reached it in this reconcile:
		// finished drills return before.
		if drillFinal(dr.Status.Phase) {
			r.announceEnd(dr)
			recordDrillMetrics(dr)
		}
	}()
	if dr.Status.Phase == "" {
		dr.Status.Phase = backstopv1alpha1.DrillPending
	}
	res, err := r.reconcileDrill(ctx, dr)
	if ue, ok := asUserError(err); ok {
		return r.fail(dr, ue.Reason, "%s", ue.Message)
	}
	return res, err
}

// announceEnd sends the event that says how the drill ended: Verified or
// DrillFailed, never only a log line.
func (r *BackupDrillReconciler) announceEnd(dr *backstopv1alpha1.BackupDrill) {
	if r.Recorder == nil {
		return
	}
	if dr.Status.Phase == backstopv1alpha1.DrillSucceeded {
		r.Recorder.Eventf(dr, nil, corev1.EventTypeNormal, ReasonVerified, "Drill", "Backup %s restored and checked: %s checks passed%s",
			dr.Spec.BackupRef.Name, dr.Status.ChecksPassed, restoreTimeNote(dr.Status.RestoreDuration))
		return
	}
	r.Recorder.Eventf(dr, nil, corev1.EventTypeWarning, ReasonDrillFailed, "Drill", "drill of Backup %s failed (%s): %s",
		dr.Spec.BackupRef.Name, dr.Status.Reason, dr.Status.Message)
}

func restoreTimeNote(d *metav1.Duration) string {
	if d == nil {
		return ""
	}
	return ", restored in " + d.Duration.Round(time.Second).String()
}

func (r *BackupDrillReconciler) reconcileDrill(ctx context.Context, dr *backstopv1alpha1.BackupDrill) (ctrl.Result, error) {
	name := jobName(dr.Name, "drill")
	// A Job already started decides the phase, whatever else changed since.
	job := &batchv1.Job{}
	err := r.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: name}, job)
	switch {
	case err == nil:
		if !metav1.IsControlledBy(job, dr) {
			return ctrl.Result{}, userErrorf(backstopv1alpha1.ReasonInvalidSpec, "a Job named %s exists and does not belong to this BackupDrill", name)
		}
		return r.followJob(ctx, dr, job)
	case !apierrors.IsNotFound(err):
		return ctrl.Result{}, err
	case dr.Status.JobName != "":
		// The cache may not show yet a Job just created: ask the API server.
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: name}, &batchv1.Job{}); err == nil {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		} else if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		return r.fail(dr, backstopv1alpha1.ReasonJobFailed, "drill Job %s disappeared before it reported a result", name)
	}

	plan, wait, err := r.plan(ctx, dr)
	if err != nil {
		return ctrl.Result{}, err
	}
	if wait != "" {
		conditions.MarkReconciling(dr, backstopv1alpha1.ReasonPending, "%s", wait)
		return ctrl.Result{RequeueAfter: waitRequeue}, nil
	}
	job, err = r.buildJob(dr, name, plan)
	if err != nil {
		return ctrl.Result{}, err
	}
	if plan.scratch != nil {
		if _, _, err := placeBesideClaimUsers(ctx, r.APIReader, job, plan.scratch); err != nil {
			return ctrl.Result{}, err
		}
	}

	// At most MaxConcurrentDrills drill Jobs run at once.
	r.slots.Lock()
	defer r.slots.Unlock()
	running, err := r.runningDrillJobs(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(running) >= r.MaxConcurrentDrills {
		conditions.MarkReconciling(dr, backstopv1alpha1.ReasonPending,
			"waiting for a drill slot: %d drill Job(s) run at once (--max-concurrent-drills=%d): %s",
			len(running), r.MaxConcurrentDrills, strings.Join(running, ", "))
		return ctrl.Result{RequeueAfter: waitRequeue}, nil
	}
	if err := createJob(ctx, r.Client, r.APIReader, dr, "BackupDrill", job); err != nil {
		return ctrl.Result{}, err
	}
	if r.created == nil {
		r.created = map[string]time.Time{}
	}
	r.created[job.Namespace+"/"+job.Name] = r.Clock.Now()
	now := metav1.NewTime(r.Clock.Now())
	dr.Status.Phase = backstopv1alpha1.DrillRunning
	dr.Status.JobName = name
	dr.Status.StartTime = &now
	conditions.MarkReconciling(dr, backstopv1alpha1.ReasonProgressing, "drill Job %s started: restoring Backup %s into %s", name, dr.Spec.BackupRef.Name, plan.into())
	ctrl.LoggerFrom(ctx).Info("Started drill Job", "job", name, "backup", dr.Spec.BackupRef.Name)
	return ctrl.Result{}, nil
}

// runningDrillJobs names the unfinished drill Jobs in the namespaces the
// operator watches: those in the cache, and those this process created
// that the cache does not show yet. Called with r.slots held.
func (r *BackupDrillReconciler) runningDrillJobs(ctx context.Context) ([]string, error) {
	jobs := &batchv1.JobList{}
	if err := r.List(ctx, jobs, client.MatchingLabels{LabelComponent: agentComponent(opDrill), LabelManagedBy: managedBy}); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for i := range jobs.Items {
		j := &jobs.Items[i]
		key := j.Namespace + "/" + j.Name
		seen[key] = true
		if !j.DeletionTimestamp.IsZero() {
			continue
		}
		if done, _, _ := jobFinished(j); !done {
			out = append(out, key)
		}
	}
	now := r.Clock.Now()
	for key, at := range r.created {
		// Once the cache shows a Job, the cache says whether it runs; a
		// Job the cache never shows (deleted at once) is forgotten.
		if seen[key] || now.Sub(at) > time.Minute {
			delete(r.created, key)
			continue
		}
		out = append(out, key)
	}
	sort.Strings(out)
	return out, nil
}

// drillPlan is what a drill Job is built from.
type drillPlan struct {
	backup  *backstopv1alpha1.Backup
	store   *backstopv1alpha1.BackupStore
	engine  string
	scratch *backstopv1alpha1.BackupTarget
	checks  []backstopv1alpha1.DrillCheck
}

func (p drillPlan) into() string {
	if p.scratch != nil {
		return "scratch target " + p.scratch.Name
	}
	return "a throwaway " + p.engine + " server"
}

// plan checks that the drill can run and gathers what its Job needs.
// Refusals are user errors (the drill fails with InvalidSpec and no Job);
// wait is set while something it needs is not there yet.
func (r *BackupDrillReconciler) plan(ctx context.Context, dr *backstopv1alpha1.BackupDrill) (drillPlan, string, error) {
	var p drillPlan
	bk := &backstopv1alpha1.Backup{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: dr.Spec.BackupRef.Name}, bk); err != nil {
		if apierrors.IsNotFound(err) {
			return p, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec, "Backup %q not found: there is nothing to drill", dr.Spec.BackupRef.Name)
		}
		return p, "", err
	}
	switch bk.Status.Phase {
	case backstopv1alpha1.BackupSucceeded:
	case backstopv1alpha1.BackupFailed:
		return p, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec, "Backup %q failed (%s); only a Succeeded Backup can be drilled", bk.Name, bk.Status.Reason)
	default:
		if !bk.DeletionTimestamp.IsZero() {
			return p, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec, "Backup %q is being deleted", bk.Name)
		}
		return p, fmt.Sprintf("waiting for Backup %s to finish", bk.Name), nil
	}
	p.backup = bk

	store := &backstopv1alpha1.BackupStore{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: bk.Spec.StoreRef.Name}, store); err != nil {
		if apierrors.IsNotFound(err) {
			return p, fmt.Sprintf("waiting for BackupStore %s to exist", bk.Spec.StoreRef.Name), nil
		}
		return p, "", err
	}
	if enc := store.Spec.Encryption; enc.Recipients != nil && enc.Recipients.IdentitySecretRef == nil {
		return p, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec,
			"BackupStore %s encrypts to public keys and has no encryption.recipients.identitySecretRef: a drill needs the private identity to open Backup %s, as a Restore does",
			store.Name, bk.Name)
	}
	if wait, err := readiness("BackupStore", store); wait != "" || err != nil {
		return p, wait, err
	}
	p.store = store

	// The engine the backup was made with; the target's checks if it is still there.
	p.engine = bk.Status.Engine
	source := &backstopv1alpha1.BackupTarget{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: bk.Spec.TargetRef.Name}, source); {
	case err == nil:
		if p.engine == "" {
			p.engine = targetEngine(source)
		}
		p.checks = append(p.checks, source.Spec.DrillChecks...)
	case !apierrors.IsNotFound(err):
		return p, "", err
	}
	if p.engine == "" {
		return p, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec, "Backup %q records no engine and its target %q is gone: the drill cannot tell which server to start", bk.Name, bk.Spec.TargetRef.Name)
	}
	seen := map[string]bool{}
	for _, c := range p.checks {
		seen[c.Name] = true
	}
	for _, c := range dr.Spec.Checks {
		if seen[c.Name] {
			return p, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec, "check %q is defined both by BackupTarget %s (drillChecks) and by this drill", c.Name, bk.Spec.TargetRef.Name)
		}
		seen[c.Name] = true
	}
	p.checks = append(p.checks, dr.Spec.Checks...)
	if p.engine == "files" && len(p.checks) > 0 {
		return p, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec, "Backup %q is a files backup: SQL checks (%s) cannot run on it", bk.Name, checkNames(p.checks))
	}

	if ref := dr.Spec.ScratchTargetRef; ref != nil {
		scratch, wait, err := r.scratchTarget(ctx, dr, bk, p.engine, ref.Name)
		if wait != "" || err != nil {
			return p, wait, err
		}
		p.scratch = scratch
	}
	return p, "", nil
}

// scratchTarget checks the target a drill restores into instead of a
// throwaway server: never production.
func (r *BackupDrillReconciler) scratchTarget(ctx context.Context, dr *backstopv1alpha1.BackupDrill, bk *backstopv1alpha1.Backup, engine, name string) (*backstopv1alpha1.BackupTarget, string, error) {
	if name == bk.Spec.TargetRef.Name {
		return nil, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec, "scratchTargetRef %s is the target Backup %s was taken of: a drill never restores into the data it checks", name, bk.Name)
	}
	scratch := &backstopv1alpha1.BackupTarget{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: name}, scratch); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Sprintf("waiting for BackupTarget %s to exist", name), nil
		}
		return nil, "", err
	}
	if e := targetEngine(scratch); e != engine {
		return nil, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec, "scratchTargetRef %s is a %s target, and Backup %s is a %s backup", name, e, bk.Name, engine)
	}
	schedules := &backstopv1alpha1.BackupScheduleList{}
	if err := r.List(ctx, schedules, client.InNamespace(dr.Namespace)); err != nil {
		return nil, "", err
	}
	for _, s := range schedules.Items {
		if s.Spec.TargetRef.Name == name {
			return nil, "", userErrorf(backstopv1alpha1.ReasonInvalidSpec, "scratchTargetRef %s is backed up by BackupSchedule %s: a drill replaces a scratch target's data, so it must not be a target anyone backs up", name, s.Name)
		}
	}
	if wait, err := readiness("BackupTarget", scratch); wait != "" || err != nil {
		return nil, wait, err
	}
	return scratch, "", nil
}

func checkNames(cs []backstopv1alpha1.DrillCheck) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// drillCheckJSON is one check as the agent reads it from BACKSTOP_DRILL_CHECKS.
type drillCheckJSON struct {
	Name   string `json:"name"`
	SQL    string `json:"sql"`
	Expect string `json:"expect"`
}

// buildJob makes the drill Job: the restore Job's shape (same image, user,
// store credentials and identity), a scratch emptyDir with a size limit,
// the deadline, and the checks.
func (r *BackupDrillReconciler) buildJob(dr *backstopv1alpha1.BackupDrill, name string, p drillPlan) (*batchv1.Job, error) {
	timeout := defaultDrillTimeout
	if dr.Spec.Timeout != nil && dr.Spec.Timeout.Duration > 0 {
		timeout = dr.Spec.Timeout.Duration
	}
	size := resource.MustParse(defaultScratchSize)
	if dr.Spec.ScratchSize != nil && !dr.Spec.ScratchSize.IsZero() {
		size = dr.Spec.ScratchSize.DeepCopy()
	}
	tmpl := dr.Spec.JobTemplate.DeepCopy()
	if tmpl == nil {
		tmpl = &backstopv1alpha1.JobTemplate{}
	}
	tmpl.ActiveDeadlineSeconds = ptr.To(int64(timeout / time.Second))
	var env []corev1.EnvVar
	if len(p.checks) > 0 {
		checks := make([]drillCheckJSON, len(p.checks))
		for i, c := range p.checks {
			checks[i] = drillCheckJSON{Name: c.Name, SQL: c.SQL, Expect: c.Expect}
		}
		data, err := json.Marshal(checks)
		if err != nil {
			return nil, err
		}
		env = append(env, corev1.EnvVar{Name: envDrillChecks, Value: string(data)})
	}
	labels := map[string]string{LabelDrill: dr.Name, LabelBackup: p.backup.Name, LabelComponent: agentComponent(opDrill), LabelManagedBy: managedBy}
	job := buildAgentJob(r.Agent, agentJobSpec{
		Op:           opDrill,
		Name:         name,
		Namespace:    dr.Namespace,
		Labels:       labels,
		Target:       p.scratch,
		Store:        p.store,
		ArtifactPath: p.backup.Status.ArtifactPath,
		ExpectSHA256: p.backup.Status.SHA256,
		Template:     tmpl,
		Engine:       p.engine,
		ScratchSize:  &size,
		Env:          env,
	})
	if err := ctrl.SetControllerReference(dr, job, r.Scheme()); err != nil {
		return nil, err
	}
	return job, nil
}

// followJob turns the drill Job's state and the agent's report into the status.
func (r *BackupDrillReconciler) followJob(ctx context.Context, dr *backstopv1alpha1.BackupDrill, job *batchv1.Job) (ctrl.Result, error) {
	dr.Status.JobName = job.Name
	done, failedReason, failedMsg := jobFinished(job)
	if !done {
		if dr.Status.Phase != backstopv1alpha1.DrillRunning {
			dr.Status.Phase = backstopv1alpha1.DrillRunning
			if dr.Status.StartTime == nil {
				t := metav1.NewTime(job.CreationTimestamp.Time)
				dr.Status.StartTime = &t
			}
			conditions.MarkReconciling(dr, backstopv1alpha1.ReasonProgressing, "drill Job %s is running", job.Name)
		}
		return ctrl.Result{}, nil
	}
	res, err := readAgentResult(ctx, r.APIReader, job)
	if err != nil {
		return ctrl.Result{}, err
	}
	if res == nil {
		return r.fail(dr, failedReason, "%s", failedMsg)
	}
	if res.Drill != nil {
		dr.Status.DrillOutcome = drillOutcome(res.Drill)
	}
	if res.Phase != agent.PhaseSucceeded {
		reason := res.Reason
		if failedReason == backstopv1alpha1.ReasonDeadlineExceeded {
			reason = failedReason
		}
		return r.fail(dr, reason, "%s", res.Message)
	}
	if failedReason != "" {
		return r.fail(dr, failedReason, "the agent reported success but the Job failed: %s", failedMsg)
	}
	if res.Drill == nil {
		return r.fail(dr, backstopv1alpha1.ReasonJobFailed, "drill Job %s finished without a drill report", job.Name)
	}
	if failed := failedChecks(dr.Status.Checks); len(failed) > 0 {
		return r.fail(dr, backstopv1alpha1.ReasonCheckFailed, "the agent reported success, but checks failed: %s", strings.Join(failed, ", "))
	}
	now := metav1.NewTime(r.Clock.Now())
	dr.Status.Phase = backstopv1alpha1.DrillSucceeded
	dr.Status.CompletionTime = &now
	dr.Status.Reason, dr.Status.Message = "", ""
	conditions.MarkReady(dr, backstopv1alpha1.ReasonSucceeded, "Backup %s restored into %s and checked: %s checks passed%s",
		dr.Spec.BackupRef.Name, dr.Status.Server, dr.Status.ChecksPassed, restoreTimeNote(dr.Status.RestoreDuration))
	return ctrl.Result{}, nil
}

// drillOutcome is the agent's report as the API shows it.
func drillOutcome(rep *agent.DrillReport) backstopv1alpha1.DrillOutcome {
	out := backstopv1alpha1.DrillOutcome{
		Tables: int64(rep.Tables),
		Rows:   rep.Rows,
		Files:  rep.Files,
		Bytes:  rep.Bytes,
		Server: rep.Server,
	}
	passed := 0
	for _, c := range rep.Checks {
		out.Checks = append(out.Checks, backstopv1alpha1.DrillCheckResult{Name: c.Name, Passed: c.Passed, Message: c.Message})
		if c.Passed {
			passed++
		}
	}
	out.ChecksPassed = fmt.Sprintf("%d/%d", passed, len(rep.Checks))
	if rep.RestoreSeconds > 0 {
		out.RestoreDuration = &metav1.Duration{Duration: time.Duration(rep.RestoreSeconds * float64(time.Second)).Round(time.Millisecond)}
	}
	return out
}

func failedChecks(cs []backstopv1alpha1.DrillCheckResult) []string {
	var out []string
	for _, c := range cs {
		if !c.Passed {
			out = append(out, c.Name)
		}
	}
	return out
}

// fail marks the drill Failed for good.
func (r *BackupDrillReconciler) fail(dr *backstopv1alpha1.BackupDrill, reason, format string, args ...any) (ctrl.Result, error) {
	if reason == "" {
		reason = backstopv1alpha1.ReasonJobFailed
	}
	msg := fmt.Sprintf(format, args...)
	if reason == backstopv1alpha1.ReasonCheckFailed {
		if failed := failedChecks(dr.Status.Checks); len(failed) > 0 && !strings.Contains(msg, failed[0]) {
			msg = fmt.Sprintf("check %s failed: %s", strings.Join(failed, ", "), msg)
		}
	}
	now := metav1.NewTime(r.Clock.Now())
	dr.Status.Phase = backstopv1alpha1.DrillFailed
	dr.Status.CompletionTime = &now
	dr.Status.Reason = reason
	dr.Status.Message = msg
	conditions.MarkStalled(dr, reason, "%s", msg)
	return ctrl.Result{}, nil
}
