package controllers

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/test/cluster"
	"github.com/backstop-io/backstop/test/podrunner"
)

// fakeAgentImage is the image the operator under test puts in agent Jobs;
// the pod runner runs a script in its place.
const fakeAgentImage = "backstop.test/agent:fake"

// operatorRig is the whole operator (every reconciler, as `backstop manager`
// runs them) on a real control plane with the Job controller, and a pod
// runner that plays the kubelet. Agent Jobs run a script that writes to a
// journal when it starts and ends, sleeps, and reports success.
type operatorRig struct {
	t       *testing.T
	c       client.Client
	cluster *cluster.Cluster
	ns      string
	journal string
	// start and stop the operator.
	start, stop func()
}

// restartOperator kills the operator and starts a new one.
func (g *operatorRig) restartOperator() {
	g.stop()
	g.start()
}

func newOperatorRig(t *testing.T) *operatorRig {
	t.Helper()
	s := runtime.NewScheme()
	if err := addSchemes(s); err != nil {
		t.Fatal(err)
	}
	cl := cluster.Start(t, cluster.Options{CRDDirectoryPaths: []string{"config/crd/bases"}, ControllerManager: true, Scheme: s})
	dir := t.TempDir()
	// Not under the temporary directory: agent Jobs mount an emptyDir on /tmp.
	jdir, err := os.MkdirTemp("/var/tmp", "backstop-journal-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(jdir) })
	journal := filepath.Join(jdir, "journal")
	// The agent's operation is its first argument; restores take longest,
	// so that two at once would overlap in the journal.
	script := fmt.Sprintf(`#!/bin/sh
echo "start $1 $HOSTNAME $(date +%%s%%N)" >> %[1]s
case "$1" in restore) sleep 2 ;; *) sleep 0.5 ;; esac
echo "end $1 $HOSTNAME $(date +%%s%%N)" >> %[1]s
printf '{"phase":"Succeeded","engine":"files"}' > /dev/termination-log
`, journal)
	agentBin := filepath.Join(dir, "bin", "backstop-agent")
	if err := os.MkdirAll(filepath.Dir(agentBin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agentBin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	podrunner.Start(t, podrunner.Options{Config: cl.Config, Root: filepath.Join(dir, "runner"), Images: map[string]string{fakeAgentImage: agentBin}})
	agent := DefaultAgentOptions()
	agent.Image = fakeAgentImage
	g := &operatorRig{t: t, c: cl.Client, cluster: cl, ns: testNamespace(t, cl.Client), journal: journal}
	g.start = func() {
		_, g.stop = startManager(t, cl.Config, g.ns, nil, func(mgr ctrl.Manager) error {
			return SetupAll(context.Background(), mgr, Options{Agent: agent, ScheduleResync: time.Second})
		})
	}
	g.start()
	g.readyStoreAndTarget()
	return g
}

// readyStoreAndTarget creates a volume store and a files target and waits
// for both to be Ready.
func (g *operatorRig) readyStoreAndTarget() {
	g.t.Helper()
	store := &backstopv1alpha1.BackupStore{
		ObjectMeta: metav1.ObjectMeta{Name: "vol", Namespace: g.ns},
		Spec: backstopv1alpha1.BackupStoreSpec{
			Volume:     &backstopv1alpha1.VolumeStore{ClaimName: "backups"},
			Encryption: backstopv1alpha1.Encryption{None: &backstopv1alpha1.NoEncryption{}},
		},
	}
	target := &backstopv1alpha1.BackupTarget{
		ObjectMeta: metav1.ObjectMeta{Name: "files", Namespace: g.ns},
		Spec:       backstopv1alpha1.BackupTargetSpec{Files: &backstopv1alpha1.FilesTarget{ClaimName: "data"}},
	}
	for _, o := range []client.Object{store, target} {
		if err := g.c.Create(context.Background(), o); err != nil {
			g.t.Fatal(err)
		}
	}
	for _, o := range []client.Object{store, target} {
		eventually(g.t, time.Minute, func() error {
			if err := g.c.Get(context.Background(), client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
			if c := readyOf(o.(interface{ GetConditions() []metav1.Condition })); c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("%T %s not Ready: %+v", o, o.GetName(), c)
			}
			return nil
		})
	}
}

func (g *operatorRig) restore(name string, safety bool) *backstopv1alpha1.Restore {
	rs := &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: g.ns},
		Spec: backstopv1alpha1.RestoreSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: "files"},
			Source:    backstopv1alpha1.RestoreSource{StoreRef: &backstopv1alpha1.LocalObjectReference{Name: "vol"}, Path: g.ns + "/files/old"},
		},
	}
	if safety {
		rs.Spec.SafetyBackup = &backstopv1alpha1.SafetyBackup{Enabled: true}
	}
	return rs
}

// restoreWatch records, in the API server's order, every state the
// Restores of a namespace go through.
type restoreWatch struct {
	mu     sync.Mutex
	seq    int
	left   map[string]int      // when a Restore first left Pending
	ended  map[string]int      // when it first reached a final phase
	phase  map[string]string   // its latest phase
	waited map[string][]string // the messages it showed while Pending
	stop   func()
}

func (g *operatorRig) watchRestores() *restoreWatch {
	g.t.Helper()
	wc, err := client.NewWithWatch(g.cluster.Config, client.Options{Scheme: g.c.Scheme()})
	if err != nil {
		g.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := wc.Watch(ctx, &backstopv1alpha1.RestoreList{}, client.InNamespace(g.ns))
	if err != nil {
		cancel()
		g.t.Fatal(err)
	}
	rw := &restoreWatch{left: map[string]int{}, ended: map[string]int{}, phase: map[string]string{}, waited: map[string][]string{}}
	done := make(chan struct{})
	rw.stop = func() { cancel(); w.Stop(); <-done }
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			rs, ok := ev.Object.(*backstopv1alpha1.Restore)
			if !ok || ev.Type == watch.Error {
				continue
			}
			rw.mu.Lock()
			rw.seq++
			p := rs.Status.Phase
			rw.phase[rs.Name] = string(p)
			if _, ok := rw.left[rs.Name]; !ok && p != "" && p != backstopv1alpha1.RestorePending {
				rw.left[rs.Name] = rw.seq
			}
			if _, ok := rw.ended[rs.Name]; !ok && restoreFinal(p) {
				rw.ended[rs.Name] = rw.seq
			}
			if c := conditionOf(rs, backstopv1alpha1.ConditionReconciling); p == backstopv1alpha1.RestorePending && c != nil && c.Reason == backstopv1alpha1.ReasonPending {
				rw.waited[rs.Name] = append(rw.waited[rs.Name], c.Message)
			}
			rw.mu.Unlock()
		}
	}()
	g.t.Cleanup(rw.stop)
	return rw
}

// jobWatch records, in the API server's order, the most restore Jobs of
// the namespace that were unfinished at once, and which they were.
type jobWatch struct {
	mu      sync.Mutex
	most    int
	mostSet []string
	stop    func()
}

func (g *operatorRig) watchRestoreJobs() *jobWatch {
	g.t.Helper()
	wc, err := client.NewWithWatch(g.cluster.Config, client.Options{Scheme: g.c.Scheme()})
	if err != nil {
		g.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := wc.Watch(ctx, &batchv1.JobList{}, client.InNamespace(g.ns), client.MatchingLabels{LabelComponent: agentComponent(opRestore)})
	if err != nil {
		cancel()
		g.t.Fatal(err)
	}
	jw := &jobWatch{}
	done := make(chan struct{})
	jw.stop = func() { cancel(); w.Stop(); <-done }
	go func() {
		defer close(done)
		unfinished := map[string]bool{}
		for ev := range w.ResultChan() {
			job, ok := ev.Object.(*batchv1.Job)
			if !ok || ev.Type == watch.Error {
				continue
			}
			if finished, _, _ := jobFinished(job); finished || ev.Type == watch.Deleted {
				delete(unfinished, job.Name)
			} else {
				unfinished[job.Name] = true
			}
			jw.mu.Lock()
			if len(unfinished) > jw.most {
				jw.most = len(unfinished)
				jw.mostSet = nil
				for name := range unfinished {
					jw.mostSet = append(jw.mostSet, name)
				}
			}
			jw.mu.Unlock()
		}
	}()
	g.t.Cleanup(jw.stop)
	return jw
}

// journalRun is one agent process: its operation, pod and run time.
type journalRun struct {
	op, pod    string
	start, end int64
}

// runs reads the journal the fake agent writes.
func (g *operatorRig) runs() []journalRun {
	g.t.Helper()
	f, err := os.Open(g.journal)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		g.t.Fatal(err)
	}
	defer f.Close()
	byPod := map[string]*journalRun{}
	var order []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 {
			continue
		}
		ts, _ := strconv.ParseInt(fields[3], 10, 64)
		r := byPod[fields[2]]
		if r == nil {
			r = &journalRun{op: fields[1], pod: fields[2]}
			byPod[fields[2]] = r
			order = append(order, fields[2])
		}
		if fields[0] == "start" {
			r.start = ts
		} else {
			r.end = ts
		}
	}
	out := make([]journalRun, 0, len(order))
	for _, p := range order {
		out = append(out, *byPod[p])
	}
	return out
}

// overlappingRestores returns pairs of restore processes that ran at once.
func overlappingRestores(runs []journalRun) []string {
	var restores []journalRun
	for _, r := range runs {
		if r.op == string(opRestore) {
			restores = append(restores, r)
		}
	}
	sort.Slice(restores, func(i, j int) bool { return restores[i].start < restores[j].start })
	var out []string
	for i := 1; i < len(restores); i++ {
		for j := 0; j < i; j++ {
			if restores[j].end == 0 || restores[j].end > restores[i].start {
				out = append(out, fmt.Sprintf("%s and %s", restores[j].pod, restores[i].pod))
			}
		}
	}
	return out
}

// TestRestoreReconciler_OneAtATimePerTarget: Restores of one target created
// together run one after the other in creation order (then name), the later
// ones Pending with a message naming the Restore ahead, the first one's
// safety backup included, and the operator killed and restarted as each of
// the first two starts; never two restore Jobs unfinished at once, nor two
// restore processes running at once.
func TestRestoreReconciler_OneAtATimePerTarget(t *testing.T) {
	g := newOperatorRig(t)
	for _, tc := range []struct {
		name   string
		n      int
		safety bool
	}{
		{"two", 2, false},
		{"three with safety backups", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.t = t
			if err := os.Remove(g.journal); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			rw := g.watchRestores()
			jw := g.watchRestoreJobs()
			prefix := strings.Fields(tc.name)[0]
			// Created one right after the other, mostly within one second
			// (creationTimestamp has seconds only): the line follows
			// creation time, then name.
			var line []*backstopv1alpha1.Restore
			for i := 0; i < tc.n; i++ {
				rs := g.restore(fmt.Sprintf("%s-%c", prefix, 'a'+i), tc.safety)
				if err := g.c.Create(context.Background(), rs); err != nil {
					t.Fatal(err)
				}
				line = append(line, rs)
			}
			sort.Slice(line, func(i, j int) bool { return restoreBefore(line[i], line[j]) })

			// The operator is killed once each of the first two has started.
			for _, rs := range line[:2] {
				eventually(t, time.Minute, func() error {
					rw.mu.Lock()
					defer rw.mu.Unlock()
					if _, ok := rw.left[rs.Name]; !ok {
						return fmt.Errorf("Restore %s has not started", rs.Name)
					}
					return nil
				})
				g.restartOperator()
			}

			eventually(t, 2*time.Minute, func() error {
				for _, rs := range line {
					got := &backstopv1alpha1.Restore{}
					if err := g.c.Get(context.Background(), client.ObjectKeyFromObject(rs), got); err != nil {
						return err
					}
					if got.Status.Phase == backstopv1alpha1.RestoreFailed {
						t.Fatalf("Restore %s failed: %s: %s", got.Name, got.Status.Reason, got.Status.Message)
					}
					if got.Status.Phase != backstopv1alpha1.RestoreSucceeded {
						return fmt.Errorf("Restore %s is %s: %+v", got.Name, got.Status.Phase, readyOf(got))
					}
				}
				return nil
			})
			// The watch may trail the last status write a little.
			eventually(t, 10*time.Second, func() error {
				rw.mu.Lock()
				defer rw.mu.Unlock()
				if len(rw.ended) < len(line) {
					return fmt.Errorf("the watch saw %d Restores end", len(rw.ended))
				}
				return nil
			})
			rw.stop()
			jw.stop()
			if jw.most != 1 {
				t.Errorf("at most %d restore Jobs of one target were unfinished at once (%v), want 1", jw.most, jw.mostSet)
			}

			if pairs := overlappingRestores(g.runs()); len(pairs) > 0 {
				t.Errorf("restore processes of one target ran at once: %v", pairs)
			}
			var restoreRuns int
			for _, r := range g.runs() {
				if r.op == string(opRestore) {
					restoreRuns++
				}
			}
			if restoreRuns != len(line) {
				t.Errorf("%d restore processes ran, want %d", restoreRuns, len(line))
			}
			for i, rs := range line {
				if i == 0 {
					continue
				}
				prev := line[i-1]
				if rw.left[rs.Name] < rw.ended[prev.Name] {
					t.Errorf("Restore %s left Pending (event %d) before %s ended (event %d)", rs.Name, rw.left[rs.Name], prev.Name, rw.ended[prev.Name])
				}
				named := false
				for _, m := range rw.waited[rs.Name] {
					if strings.Contains(m, "waiting for Restore "+prev.Name+" ") {
						named = true
					}
				}
				if !named {
					t.Errorf("Restore %s never said it waits for %s: %q", rs.Name, prev.Name, rw.waited[rs.Name])
				}
			}
			if tc.safety {
				for _, rs := range line {
					bk := &backstopv1alpha1.Backup{}
					if err := g.c.Get(context.Background(), client.ObjectKey{Namespace: g.ns, Name: jobName(rs.Name, "safety")}, bk); err != nil || bk.Status.Phase != backstopv1alpha1.BackupSucceeded {
						t.Errorf("safety Backup of %s: %v %s", rs.Name, err, bk.Status.Phase)
					}
					// Deleting it must not delete the data it saved.
					if bk.Spec.DeletionPolicy != backstopv1alpha1.DeletionRetain {
						t.Errorf("safety Backup of %s has deletionPolicy %q, want Retain", rs.Name, bk.Spec.DeletionPolicy)
					}
				}
			}
		})
	}
}
