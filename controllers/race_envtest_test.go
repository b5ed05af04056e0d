package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/schedule"
)

// laggingReads is a client whose Get of a BackupSchedule returns, half of
// the time, a version of it seen earlier: an informer cache that trails
// the API server by a few writes.
type laggingReads struct {
	client.Client
	mu     sync.Mutex
	rng    *rand.Rand
	seen   map[client.ObjectKey][]*backstopv1alpha1.BackupSchedule
	served int
}

func (c *laggingReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := c.Client.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	bs, ok := obj.(*backstopv1alpha1.BackupSchedule)
	if !ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	versions := c.seen[key]
	if n := len(versions); n == 0 || versions[n-1].ResourceVersion != bs.ResourceVersion {
		versions = append(versions, bs.DeepCopy())
		if len(versions) > 4 {
			versions = versions[1:]
		}
		c.seen[key] = versions
	}
	if len(versions) > 1 && c.rng.IntN(2) == 0 {
		versions[c.rng.IntN(len(versions)-1)].DeepCopyInto(bs)
		c.served++
	}
	return nil
}

var dueAtRE = regexp.MustCompile(`^(?:skipped|missed) the backup due at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)`)

// TestRace_SchedulesUnderStaleReads runs the schedule controller, as the
// manager runs it, on the real API server with a cache that serves old
// copies of the schedules, one schedule per concurrency policy, over many due
// times of a fake clock, with two suspensions that start and end between due
// times (the second resumed while the operator is down, after a due time
// passed), and the operator restarted every five due times. The test plays the Backup controller: Backups start, and finish
// (mostly Succeeded, some Failed) after a random number of due times. At the
// end, per schedule and due time: exactly one Backup or one recorded skip;
// a due time inside a suspension skipped as such; no Backup deleted except
// by retention or by Replace for a later due time.
func TestRace_SchedulesUnderStaleReads(t *testing.T) {
	const steps = 24
	suspended := map[int]bool{6: true, 7: true, 8: true, 15: true, 16: true}
	const lastSuspended = 16
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	cl := realCluster(t)
	ns := testNamespace(t, cl.Client)
	lag := &laggingReads{rng: rand.New(rand.NewPCG(seed, 2)), seen: map[client.ObjectKey][]*backstopv1alpha1.BackupSchedule{}}
	evs := &eventLog{}
	clk := clocktesting.NewFakeClock(time.Now())
	startOperator := func() func() {
		_, stop := startManager(t, cl.Config, ns, func(c client.Client) client.Client { lag.Client = c; return lag }, func(mgr ctrl.Manager) error {
			if err := indexSpecRefs(context.Background(), mgr.GetFieldIndexer()); err != nil {
				return err
			}
			r := &BackupScheduleReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Concurrency: 2, Recorder: evs, Clock: clk, Resync: 200 * time.Millisecond}
			return r.SetupWithManager(mgr)
		})
		return stop
	}
	stopOperator := startOperator()

	ctx := context.Background()
	names := map[backstopv1alpha1.ConcurrencyPolicy]string{}
	var first time.Time
	for _, p := range allPolicies {
		bs := &backstopv1alpha1.BackupSchedule{
			ObjectMeta: metav1.ObjectMeta{Name: "race-" + map[backstopv1alpha1.ConcurrencyPolicy]string{"Forbid": "forbid", "Allow": "allow", "Replace": "replace"}[p], Namespace: ns},
			Spec: backstopv1alpha1.BackupScheduleSpec{
				TargetRef: backstopv1alpha1.LocalObjectReference{Name: "orders"}, StoreRef: backstopv1alpha1.LocalObjectReference{Name: "s3"},
				Schedule: "* * * * *", ConcurrencyPolicy: p,
			},
		}
		if err := cl.Client.Create(ctx, bs); err != nil {
			t.Fatal(err)
		}
		names[p] = bs.Name
		if f := bs.CreationTimestamp.Time.Truncate(time.Minute).Add(time.Minute); f.After(first) {
			first = f
		}
	}
	due := func(k int) time.Time { return first.Add(time.Duration(k) * time.Minute) }

	writeSuspend := func(v bool) {
		for _, name := range names {
			eventually(t, 10*time.Second, func() error {
				bs := &backstopv1alpha1.BackupSchedule{}
				if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, bs); err != nil {
					return err
				}
				bs.Spec.Suspend = v
				return cl.Client.Update(ctx, bs)
			})
		}
	}
	setSuspend := func(v bool) {
		writeSuspend(v)
		// Wait for the operator to see it.
		for _, name := range names {
			eventually(t, 20*time.Second, func() error {
				bs := &backstopv1alpha1.BackupSchedule{}
				if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, bs); err != nil {
					return err
				}
				if bs.Status.ObservedGeneration != bs.Generation || (readyReason(bs) == backstopv1alpha1.ReasonSuspended) != v {
					return fmt.Errorf("%s: suspend=%v not observed yet (Ready %s)", name, v, readyReason(bs))
				}
				return nil
			})
		}
	}

	// moveBackups plays the Backup controller between due times.
	moveBackups := func() {
		list := &backstopv1alpha1.BackupList{}
		if err := cl.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			bk := &list.Items[i]
			if !bk.DeletionTimestamp.IsZero() || isFinal(bk.Status.Phase) {
				continue
			}
			switch x := rng.IntN(100); {
			case bk.Status.Phase == "":
				bk.Status.Phase = backstopv1alpha1.BackupRunning
			case x < 35:
				bk.Status.Phase = backstopv1alpha1.BackupSucceeded
			case x < 45:
				bk.Status.Phase = backstopv1alpha1.BackupFailed
			default:
				continue
			}
			if isFinal(bk.Status.Phase) {
				now := metav1.NewTime(clk.Now())
				bk.Status.CompletionTime = &now
			}
			if err := cl.Client.Status().Update(ctx, bk); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
		}
	}

	// deletedNow lists the Backups being deleted.
	deletedNow := func() map[string]bool {
		list := &backstopv1alpha1.BackupList{}
		if err := cl.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, bk := range list.Items {
			if !bk.DeletionTimestamp.IsZero() {
				out[bk.Name] = true
			}
		}
		return out
	}
	// killOperator stops the operator. A deletion it made while it stopped
	// may have no event: the call returned an error to the operator (its
	// context ended) after the API server had done it, as when the process
	// is killed between the two.
	killedMidCall := map[string]bool{}
	killOperator := func() {
		before := deletedNow()
		stopOperator()
		for name := range deletedNow() {
			if !before[name] {
				killedMidCall[name] = true
			}
		}
	}

	start := time.Now()
	restarts := 0
	for k := 0; k < steps; k++ {
		if suspended[k] && !suspended[k-1] {
			clk.SetTime(due(k - 1).Add(30 * time.Second))
			setSuspend(true)
		}
		if !suspended[k] && suspended[k-1] {
			clk.SetTime(due(k - 1).Add(30 * time.Second))
			setSuspend(false)
		}
		moveBackups()
		if k == lastSuspended {
			// The operator is down when this due time passes and when the
			// schedules are resumed: it must still count it as suspended.
			killOperator()
			clk.SetTime(due(k).Add(30 * time.Second))
			writeSuspend(false)
			stopOperator = startOperator()
			restarts++
		} else if k%5 == 4 {
			// The operator is killed and comes back just before a due time.
			killOperator()
			stopOperator = startOperator()
			restarts++
		}
		clk.SetTime(due(k).Add(time.Second))
		for _, name := range names {
			eventually(t, 20*time.Second, func() error {
				bs := &backstopv1alpha1.BackupSchedule{}
				if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, bs); err != nil {
					return err
				}
				if bs.Status.LastScheduleTime == nil || !bs.Status.LastScheduleTime.Time.Equal(due(k)) {
					return fmt.Errorf("%s: lastScheduleTime %v, want %s", name, bs.Status.LastScheduleTime, due(k))
				}
				return nil
			})
		}
	}
	// Stop the operator, waiting for the reconciles under way, so that the
	// Backups and the events are counted at one moment.
	killOperator()
	t.Logf("%d due times per schedule in %s, %d operator restarts; %d stale schedule reads served", steps, time.Since(start).Round(time.Second), restarts, func() int {
		lag.mu.Lock()
		defer lag.mu.Unlock()
		return lag.served
	}())
	if lag.served == 0 {
		t.Fatal("no stale read was served: the test proves nothing")
	}

	list := &backstopv1alpha1.BackupList{}
	if err := cl.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	// Nothing removes the finalizer here, so every Backup ever created is
	// still listed, the deleted ones with a deletionTimestamp.
	backups := map[string]*backstopv1alpha1.Backup{}
	for i := range list.Items {
		backups[list.Items[i].Name] = &list.Items[i]
	}

	for _, p := range allPolicies {
		name := names[p]
		created := map[string]int{}
		skipped := map[string][]string{}
		replaced := map[string][]recordedEvent{}
		pruned := map[string]int{}
		for _, ev := range evs.withReason(ReasonBackupCreated, ReasonSkippedConcurrent, ReasonSkippedSuspended, ReasonMissedSchedule, ReasonReplaced, ReasonPruned) {
			if ev.Regarding != name {
				continue
			}
			switch ev.Reason {
			case ReasonBackupCreated:
				created[ev.Related]++
			case ReasonReplaced:
				replaced[ev.Related] = append(replaced[ev.Related], ev)
			case ReasonPruned:
				pruned[ev.Related]++
			default:
				m := dueAtRE.FindStringSubmatch(ev.Note)
				if m == nil {
					t.Errorf("%s: a skip that names no single due time: %+v", name, ev)
					continue
				}
				skipped[m[1]] = append(skipped[m[1]], ev.Reason)
			}
		}
		counts := map[string]int{}
		for k := 0; k < steps; k++ {
			at := due(k).UTC().Format(time.RFC3339)
			own := schedule.BackupName(name, due(k))
			_, exists := backups[own]
			switch {
			case exists && created[own] == 1 && len(skipped[at]) == 0:
				counts["created"]++
				if suspended[k] {
					t.Errorf("%s: Backup %s for a due time inside a suspension", name, own)
				}
			case !exists && created[own] == 0 && len(skipped[at]) == 1:
				counts[skipped[at][0]]++
				if suspended[k] != (skipped[at][0] == ReasonSkippedSuspended) {
					t.Errorf("%s: due time %s (suspended %v) skipped with %s", name, at, suspended[k], skipped[at][0])
				}
				if p != backstopv1alpha1.ConcurrencyForbid && !suspended[k] {
					t.Errorf("%s: due time %s skipped (%s) under %s", name, at, skipped[at][0], p)
				}
			default:
				t.Errorf("%s: due time %s: Backup exists %v, created %d times, skipped %v; want one Backup or one skip", name, at, exists, created[own], skipped[at])
			}
		}
		for bkName, bk := range backups {
			if bk.Spec.ScheduleRef == nil || bk.Spec.ScheduleRef.Name != name {
				continue
			}
			if bk.DeletionTimestamp.IsZero() {
				if len(replaced[bkName]) > 0 || pruned[bkName] > 0 {
					t.Errorf("%s: events say %s was deleted, but it was not", name, bkName)
				}
				continue
			}
			counts["deleted"]++
			switch {
			case pruned[bkName]+len(replaced[bkName]) == 0 && killedMidCall[bkName]:
				// Deleted as the operator was stopped: no event is owed,
				// but only a failed Backup (retention) or, under Replace, an
				// unfinished one of a due time before the newest may go.
				counts["deleted while the operator stopped"]++
				if bk.Status.Phase != backstopv1alpha1.BackupFailed && !(p == backstopv1alpha1.ConcurrencyReplace && !isFinal(bk.Status.Phase) && backupTime(bk).Before(due(steps-1))) {
					t.Errorf("%s: Backup %s (%s) deleted as the operator stopped, neither by retention nor by Replace", name, bkName, bk.Status.Phase)
				}
			case pruned[bkName] == 1 && len(replaced[bkName]) == 0:
			case pruned[bkName] == 0 && len(replaced[bkName]) == 1 && p == backstopv1alpha1.ConcurrencyReplace:
				// The replacement is the Backup of a later due time.
				by, err := time.Parse(time.RFC3339, replacementDue(replaced[bkName][0].Note))
				if err != nil || !backupTime(bk).Before(by) {
					t.Errorf("%s: %s was replaced by a Backup not of a later due time: %q", name, bkName, replaced[bkName][0].Note)
				}
			default:
				t.Errorf("%s: Backup %s deleted with %d Pruned and %d Replaced events", name, bkName, pruned[bkName], len(replaced[bkName]))
			}
		}
		for _, ev := range evs.withReason(ReasonSkippedConcurrent) {
			m := dueAtRE.FindStringSubmatch(ev.Note)
			if ev.Regarding == name && m != nil && len(noteMentions([]recordedEvent{ev}, schedule.BackupName(name, mustParse(t, m[1])))) > 0 {
				t.Errorf("%s: a skip names the due time's own Backup: %q", name, ev.Note)
			}
		}
		t.Logf("%s: %v", name, counts)
	}
}

var replacementRE = regexp.MustCompile(`to start Backup \S+ for (\S+):`)

// replacementDue is the due time a Replaced event says the new Backup is for.
func replacementDue(note string) string {
	if m := replacementRE.FindStringSubmatch(note); m != nil {
		return m[1]
	}
	return ""
}

func mustParse(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}
