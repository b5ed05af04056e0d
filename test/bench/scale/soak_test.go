package scale

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/controllers"
)

const (
	soakInterval  = 10 * time.Second
	soakKillEvery = 30 * time.Second
	// A Backup's agent "runs" this long when it is one of the slow ones
	// (one in five): longer than the interval, so the next due time finds
	// it running and each policy has something to decide.
	soakSlowAgent = 15 * time.Second
	// An event the operator sent just before it was killed may be lost
	// with the process (events are sent asynchronously). A record missing
	// this close before a kill is counted apart, not as a failure.
	soakKillWindow = 3 * time.Second
)

// TestOperatorSoak: 100 BackupSchedules (BACKSTOP_SOAK_SCHEDULES) firing
// `@every 10s`, a third each under Forbid, Replace and Allow, with retention,
// for 10 minutes (BACKSTOP_SOAK_DURATION), while the operator (its own
// process, the binary of this tree) is killed with SIGKILL every 30 s and
// started again. One agent in five outlasts the interval. At the end the
// schedules are suspended and the operator, no longer killed, is given up to
// soakDrain to finish what it started. Then, per schedule: every due time
// has exactly one Backup or one recorded skip, with no gap between the
// first and the last; no Backup was deleted except by retention or by
// Replace for a later due time; nothing is left unfinished.
//
// It runs only with BACKSTOP_BENCH=1 (`make bench`).
func TestOperatorSoak(t *testing.T) {
	if os.Getenv("BACKSTOP_BENCH") != "1" || testing.Short() {
		t.Skip("a benchmark: set BACKSTOP_BENCH=1 (make bench) to run it")
	}
	n := envInt(t, "BACKSTOP_SOAK_SCHEDULES", 100, 3, 1000)
	run := 10 * time.Minute
	if s := os.Getenv("BACKSTOP_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Minute || d > time.Hour {
			t.Fatalf("BACKSTOP_SOAK_DURATION=%q: want 1m..1h", s)
		}
		run = d
	}
	crlog.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), run+soakDrain+15*time.Minute)
	defer cancel()

	bin := buildBackstop(ctx, t)
	// The default controllers: the Job controller, and the garbage
	// collector that removes the Jobs of deleted Backups.
	bc := startBenchCluster(t, nil)
	c, cfg, scheme, k8s := bc.Cluster, bc.cfg, bc.scheme, bc.k8s

	comp := newCompleter(bc.cs, 100_000)
	comp.delay = func(pod *corev1.Pod) time.Duration {
		if pod.Labels[componentLabel] != "backup-agent" {
			return 0
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(pod.Labels[backupLabel]))
		if h.Sum32()%5 == 0 {
			return soakSlowAgent
		}
		return 0
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	cache := startWatches(watchCtx, t, cfg, scheme, newTracker(), comp)
	comp.run(watchCtx, completerWorkers)
	seen := newBackupLog()
	inf, err := cache.GetInformer(watchCtx, &backstopv1alpha1.Backup{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { seen.observe(o, false) },
		UpdateFunc: func(_, o any) { seen.observe(o, false) },
		DeleteFunc: func(o any) { seen.observe(o, true) },
	}); err != nil {
		t.Fatal(err)
	}

	op := startOperator(ctx, t, bin, c.KubeconfigPath)
	logs := []string{op.logPath} // every incarnation's
	setupNamespace(ctx, t, k8s)
	policies := []backstopv1alpha1.ConcurrencyPolicy{backstopv1alpha1.ConcurrencyForbid, backstopv1alpha1.ConcurrencyReplace, backstopv1alpha1.ConcurrencyAllow}
	policyOf := map[string]backstopv1alpha1.ConcurrencyPolicy{}
	for i := range n {
		bs := &backstopv1alpha1.BackupSchedule{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("soak-%03d", i), Namespace: benchNamespace},
			Spec: backstopv1alpha1.BackupScheduleSpec{
				TargetRef:         backstopv1alpha1.LocalObjectReference{Name: "db"},
				StoreRef:          backstopv1alpha1.LocalObjectReference{Name: "store"},
				Schedule:          "@every 10s",
				ConcurrencyPolicy: policies[i%3],
				Retention:         &backstopv1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](3), FailedHistoryLimit: ptr.To[int32](1)},
			},
		}
		if err := k8s.Create(ctx, bs); err != nil {
			t.Fatal(err)
		}
		policyOf[bs.Name] = bs.Spec.ConcurrencyPolicy
	}

	start := time.Now()
	t.Logf("%d schedules @every %s for %s, the operator killed every %s", n, soakInterval, run, soakKillEvery)
	var kills []time.Time
	peakRSS := int64(0)
	for time.Since(start) < run {
		time.Sleep(min(soakKillEvery, run-time.Since(start)))
		if time.Since(start) >= run {
			break
		}
		if op.exited() {
			t.Fatalf("the operator exited by itself; log tail:\n%s", tail(op.logPath, 40))
		}
		if rss, err := op.procStatus("VmHWM"); err == nil {
			peakRSS = max(peakRSS, rss)
		}
		kills = append(kills, time.Now())
		op.kill()
		op = startOperator(ctx, t, bin, c.KubeconfigPath)
		logs = append(logs, op.logPath)
	}
	end := time.Now()
	// No more due times: suspend every schedule, and let the operator, up
	// and no longer killed, finish the Backups it has started. What is
	// still unfinished after soakDrain is stuck, not late; how long the
	// backlog took to clear says how far behind the operator was.
	for i := range n {
		bs := &backstopv1alpha1.BackupSchedule{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("soak-%03d", i), Namespace: benchNamespace}}
		if err := k8s.Patch(ctx, bs, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`))); err != nil {
			t.Fatal(err)
		}
	}
	drained := waitDrained(seen, soakSlowAgent+2*soakInterval, soakDrain)
	t.Logf("the Backups unfinished when the soak ended took %s to finish", drained.Round(time.Second))
	if rss, err := op.procStatus("VmHWM"); err == nil {
		peakRSS = max(peakRSS, rss)
	}
	op.stop(t)
	stopWatch()

	evs := &eventsv1.EventList{}
	if err := k8s.List(ctx, evs, client.InNamespace(benchNamespace)); err != nil {
		t.Fatal(err)
	}
	res := checkSoak(t, seen.snapshot(), evs.Items, policyOf, kills, end, deletionLogs(logs))
	t.Logf("soak: %d schedules, %s, %d operator kills; operator peak RSS %.1f MiB; completer: %d pods completed, %d errors",
		n, run, len(kills), float64(peakRSS)/(1<<20), comp.done.Load(), comp.failed.Load())
	for _, p := range policies {
		t.Logf("  %-7s %v", p, res[p])
	}
	if errs := comp.errors(); len(errs) > 0 {
		t.Logf("completer errors (first %d): %v", len(errs), errs)
	}
}

func envInt(t *testing.T, name string, def, lo, hi int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		t.Fatalf("%s=%q: want %d..%d", name, s, lo, hi)
	}
	return v
}

// kill ends the operator with SIGKILL, as a node failure or an OOM kill would.
func (op *operator) kill() {
	op.stopOnce.Do(func() {
		_ = op.cmd.Process.Signal(syscall.SIGKILL)
		<-op.done
		_ = op.logFile.Close()
	})
}

// seenBackup is what the test's watch saw of one Backup over its life.
type seenBackup struct {
	schedule string
	due      time.Time
	created  time.Time
	phase    backstopv1alpha1.BackupPhase
	deleted  time.Time // when its deletion was first seen (deletionTimestamp or gone)
}

type backupLog struct {
	mu sync.Mutex
	m  map[string]*seenBackup
}

func newBackupLog() *backupLog { return &backupLog{m: map[string]*seenBackup{}} }

func (l *backupLog) observe(o any, gone bool) {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	bk, ok := o.(*backstopv1alpha1.Backup)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.m[bk.Name]
	if s == nil {
		s = &seenBackup{schedule: bk.Labels[controllers.LabelSchedule]}
		s.due, _ = time.Parse(time.RFC3339, bk.Annotations[controllers.AnnotationScheduledTime])
		s.created = bk.CreationTimestamp.Time
		l.m[bk.Name] = s
	}
	s.phase = bk.Status.Phase
	if s.deleted.IsZero() {
		switch {
		case !bk.DeletionTimestamp.IsZero():
			s.deleted = bk.DeletionTimestamp.Time
		case gone:
			s.deleted = time.Now()
		}
	}
}

// soakDrain bounds the wait for the Backups unfinished at the end.
const soakDrain = 5 * time.Minute

// waitDrained waits at least min, and then until no Backup that exists is
// unfinished, or limit has passed; it returns how long it waited.
func waitDrained(l *backupLog, min, limit time.Duration) time.Duration {
	start := time.Now()
	time.Sleep(min)
	for time.Since(start) < limit {
		unfinished := 0
		for _, bk := range l.snapshot() {
			if bk.deleted.IsZero() && bk.phase != backstopv1alpha1.BackupSucceeded && bk.phase != backstopv1alpha1.BackupFailed {
				unfinished++
			}
		}
		if unfinished == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	return time.Since(start)
}

func (l *backupLog) snapshot() map[string]seenBackup {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]seenBackup, len(l.m))
	for k, v := range l.m {
		out[k] = *v
	}
	return out
}

// rfc3339 matches the UTC due times the schedule's events name.
const rfc3339 = `(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)`

var (
	dueAtRE       = regexp.MustCompile(`backup due at ` + rfc3339)
	missedRangeRE = regexp.MustCompile(`missed (\d+) backups due after (?:the schedule was created at )?` + rfc3339 + ` and before ` + rfc3339)
	suspendedRE   = regexp.MustCompile(`skipped (\d+) backups due while the schedule was suspended, the newest at ` + rfc3339)
	replacedForRE = regexp.MustCompile(`to start Backup \S+ for ` + rfc3339)
)

// soakReporter is what checkSoak needs of a *testing.T; its unit test
// passes one that collects the errors.
type soakReporter interface {
	Helper()
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
}

// checkSoak checks the invariants per schedule and counts what happened,
// per policy.
//
// logged maps a Backup to the operator's log line that says it deleted it:
// not a record the test accepts (events are what users see), but a failure
// says what the log knew.
func checkSoak(t soakReporter, backups map[string]seenBackup, evs []eventsv1.Event, policyOf map[string]backstopv1alpha1.ConcurrencyPolicy, kills []time.Time, end time.Time, logged map[string]string) map[backstopv1alpha1.ConcurrencyPolicy]map[string]int {
	t.Helper()
	// killedWithin: the operator was killed in [at, at+window].
	killedWithin := func(at time.Time, window time.Duration) bool {
		for _, k := range kills {
			if !k.Before(at) && k.Sub(at) <= window {
				return true
			}
		}
		return false
	}
	counts := map[backstopv1alpha1.ConcurrencyPolicy]map[string]int{}
	for _, p := range policyOf {
		counts[p] = map[string]int{}
	}
	// accounted[schedule][due] lists what accounts for each due time.
	accounted := map[string]map[time.Time][]string{}
	account := func(schedule string, due time.Time, what string) {
		if accounted[schedule] == nil {
			accounted[schedule] = map[time.Time][]string{}
		}
		accounted[schedule][due] = append(accounted[schedule][due], what)
	}
	// How late the operator was: a Backup's creation after its due time.
	var late []time.Duration
	for name, bk := range backups {
		if bk.schedule == "" || bk.due.IsZero() {
			t.Errorf("Backup %s: no schedule label or due time", name)
			continue
		}
		account(bk.schedule, bk.due, "Backup "+name)
		counts[policyOf[bk.schedule]]["backups"]++
		late = append(late, bk.created.Sub(bk.due))
	}
	if len(late) > 0 {
		slices.Sort(late)
		at := func(q float64) time.Duration { return late[int(q*float64(len(late)-1))].Round(100 * time.Millisecond) }
		t.Logf("Backups created after their due time: p50 %s, p99 %s, max %s (creation times are in whole seconds)", at(0.5), at(0.99), at(1))
	}
	pruned, replaced := map[string]int{}, map[string]string{}
	for _, ev := range evs {
		schedule := ev.Regarding.Name
		p, ok := policyOf[schedule]
		if !ok || ev.Regarding.Kind != "BackupSchedule" {
			continue
		}
		related := ""
		if ev.Related != nil {
			related = ev.Related.Name
		}
		switch ev.Reason {
		case controllers.ReasonPruned:
			pruned[related]++
		case controllers.ReasonReplaced:
			m := replacedForRE.FindStringSubmatch(ev.Note)
			if m == nil {
				t.Errorf("%s: a Replaced event that names no due time: %q", schedule, ev.Note)
				continue
			}
			replaced[related] = m[1]
			counts[p]["replaced"]++
		case controllers.ReasonSkippedSuspended:
			// The soak suspends every schedule at its end: the due times
			// the operator had not yet handled then are skipped, and so are
			// those after it. A skip of a due time long before the end
			// hides a schedule that had stalled.
			n, newest := 1, time.Time{}
			if m := suspendedRE.FindStringSubmatch(ev.Note); m != nil {
				n, _ = strconv.Atoi(m[1])
				newest, _ = time.Parse(time.RFC3339, m[2])
			} else if m := dueAtRE.FindStringSubmatch(ev.Note); m != nil {
				newest, _ = time.Parse(time.RFC3339, m[1])
			}
			if newest.IsZero() || n < 1 {
				t.Errorf("%s: a suspended skip that names no due time: %q", schedule, ev.Note)
				continue
			}
			for i := range n {
				d := newest.Add(-time.Duration(i) * soakInterval)
				switch {
				case d.After(end):
				case d.Before(end.Add(-3 * soakInterval)):
					t.Errorf("%s: due time %s skipped as suspended, though the soak suspended the schedules at %s: the schedule had stalled",
						schedule, d.Format(time.RFC3339), end.Format(time.RFC3339))
				default:
					account(schedule, d, ev.Reason)
					counts[p]["skipped at the end (suspended)"]++
				}
			}
		case controllers.ReasonSkippedConcurrent, controllers.ReasonMissedSchedule:
			if m := missedRangeRE.FindStringSubmatch(ev.Note); m != nil {
				after, err1 := time.Parse(time.RFC3339, m[2])
				before, err2 := time.Parse(time.RFC3339, m[3])
				want, _ := strconv.Atoi(m[1])
				got := 0
				for d := before.Add(-soakInterval); d.After(after); d = d.Add(-soakInterval) {
					account(schedule, d, ev.Reason+" (range)")
					got++
				}
				if err1 != nil || err2 != nil || got != want {
					t.Errorf("%s: %q covers %d due times, says %d", schedule, ev.Note, got, want)
				}
				counts[p][ev.Reason] += got
				continue
			}
			m := dueAtRE.FindStringSubmatch(ev.Note)
			at, err := time.Parse(time.RFC3339, safeIndex(m, 1))
			if err != nil {
				t.Errorf("%s: a skip that names no due time: %q", schedule, ev.Note)
				continue
			}
			if ev.Reason == controllers.ReasonSkippedConcurrent && p != backstopv1alpha1.ConcurrencyForbid {
				t.Errorf("%s: skipped a due time as concurrent under %s: %q", schedule, p, ev.Note)
			}
			account(schedule, at, ev.Reason)
			counts[p][ev.Reason]++
		}
	}

	for schedule, p := range policyOf {
		dues := make([]time.Time, 0, len(accounted[schedule]))
		for d := range accounted[schedule] {
			dues = append(dues, d)
		}
		sort.Slice(dues, func(i, j int) bool { return dues[i].Before(dues[j]) })
		if len(dues) == 0 {
			t.Errorf("%s: no due time handled: the schedule never ran", schedule)
			continue
		}
		if newest := dues[len(dues)-1]; newest.Before(end.Add(-3 * soakInterval)) {
			t.Errorf("%s: the newest due time handled is %s, %s before the soak ended: the schedule stalled",
				schedule, newest.Format(time.RFC3339), end.Sub(newest).Round(time.Second))
			continue
		}
		counts[p]["due times"] += len(dues)
		for i, d := range dues {
			if what := accounted[schedule][d]; len(what) > 1 {
				t.Errorf("%s: due time %s accounted %d times: %v", schedule, d.Format(time.RFC3339), len(what), what)
			}
			if i == 0 {
				continue
			}
			for gap := dues[i-1].Add(soakInterval); gap.Before(d); gap = gap.Add(soakInterval) {
				// Neither a Backup nor a recorded skip. The operator decides a
				// due time after it passes and before the next; the only
				// allowed loss is the event of a decision made just before
				// the process was killed.
				if killedWithin(gap, soakInterval) {
					counts[p]["skip event lost to a kill"]++
					continue
				}
				t.Errorf("%s: due time %s has no Backup and no recorded skip", schedule, gap.Format(time.RFC3339))
			}
		}
	}

	for name, bk := range backups {
		p := policyOf[bk.schedule]
		if bk.deleted.IsZero() {
			if pruned[name] > 0 || replaced[name] != "" {
				t.Errorf("events say Backup %s was deleted, but it was not", name)
			}
			if bk.phase != backstopv1alpha1.BackupSucceeded && bk.phase != backstopv1alpha1.BackupFailed {
				t.Errorf("Backup %s (due %s) is still %q %s after the soak", name, bk.due.Format(time.RFC3339), bk.phase, soakDrain)
			}
			continue
		}
		switch {
		case pruned[name] == 1 && replaced[name] == "":
			counts[p]["pruned"]++
		case pruned[name] == 0 && replaced[name] != "":
			by, err := time.Parse(time.RFC3339, replaced[name])
			if p != backstopv1alpha1.ConcurrencyReplace || err != nil || !bk.due.Before(by) {
				t.Errorf("Backup %s (due %s, %s) replaced for %q", name, bk.due.Format(time.RFC3339), p, replaced[name])
			}
		case pruned[name] == 0 && replaced[name] == "" && killedWithin(bk.deleted, soakKillWindow):
			counts[p]["deleted, event lost to a kill"]++
		default:
			next := "none"
			for _, k := range kills {
				if k.After(bk.deleted) {
					next = k.Sub(bk.deleted).Round(100*time.Millisecond).String() + " after"
					break
				}
			}
			log := logged[name]
			if log == "" {
				log = "no line"
			}
			t.Errorf("Backup %s (%s) deleted at %s with %d Pruned and %q Replaced events; next kill: %s; the operator's log: %s",
				name, p, bk.deleted.Format(time.RFC3339Nano), pruned[name], replaced[name], next, log)
		}
	}
	return counts
}

// deletionLogs reads the operators' logs for the lines that say a Backup
// was deleted (by retention, or by Replace), by the Backup's name.
func deletionLogs(paths []string) map[string]string {
	out := map[string]string{}
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			if !strings.Contains(sc.Text(), `"Deleted a`) {
				continue
			}
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			for _, key := range []string{"backup", "deleted"} {
				if name, ok := line[key].(string); ok {
					out[name] = fmt.Sprintf("%v %q", line["ts"], line["msg"])
				}
			}
		}
		f.Close()
	}
	return out
}

func safeIndex(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}
