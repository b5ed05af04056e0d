package kubectlplugin

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

func cond(status metav1.ConditionStatus, reason string) []metav1.Condition {
	return []metav1.Condition{{Type: backstopv1alpha1.ConditionReady, Status: status, Reason: reason, Message: "m"}}
}

func TestBuildStatus(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(d)) }
	target := func(name string) backstopv1alpha1.BackupTarget {
		return backstopv1alpha1.BackupTarget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Status: backstopv1alpha1.BackupTargetStatus{Engine: "files"}}
	}
	backup := func(name, target string, phase backstopv1alpha1.BackupPhase, created time.Duration) backstopv1alpha1.Backup {
		done := at(created + time.Minute)
		return backstopv1alpha1.Backup{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: at(created)},
			Spec:       backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: target}, StoreRef: backstopv1alpha1.LocalObjectReference{Name: "s3"}},
			Status:     backstopv1alpha1.BackupStatus{Phase: phase, CompletionTime: &done, StoredBytes: 3726, Reason: "DumpFailed"},
		}
	}
	next := at(time.Hour)
	stores := []backstopv1alpha1.BackupStore{
		{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "ns"}, Status: backstopv1alpha1.BackupStoreStatus{ObjectStatus: backstopv1alpha1.ObjectStatus{Conditions: cond(metav1.ConditionTrue, "Succeeded")}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "unused", Namespace: "ns"}, Status: backstopv1alpha1.BackupStoreStatus{ObjectStatus: backstopv1alpha1.ObjectStatus{Conditions: cond(metav1.ConditionFalse, "StoreUnreachable")}}},
	}
	schedules := []backstopv1alpha1.BackupSchedule{
		{ObjectMeta: metav1.ObjectMeta{Name: "a-nightly", Namespace: "ns"}, Spec: backstopv1alpha1.BackupScheduleSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: "a"}, StoreRef: backstopv1alpha1.LocalObjectReference{Name: "s3"}},
			Status: backstopv1alpha1.BackupScheduleStatus{NextScheduleTime: &next}},
		{ObjectMeta: metav1.ObjectMeta{Name: "d-nightly", Namespace: "ns"}, Spec: backstopv1alpha1.BackupScheduleSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: "d"}, StoreRef: backstopv1alpha1.LocalObjectReference{Name: "gone"}, Suspend: true}},
	}
	backups := []backstopv1alpha1.Backup{
		// a: an old failure, then a success: OK.
		backup("a-1", "a", backstopv1alpha1.BackupFailed, -3*time.Hour),
		backup("a-2", "a", backstopv1alpha1.BackupSucceeded, -2*time.Hour),
		// b: a success, then a failure: Failing, the success still shown.
		backup("b-1", "b", backstopv1alpha1.BackupSucceeded, -3*time.Hour),
		backup("b-2", "b", backstopv1alpha1.BackupFailed, -2*time.Hour),
		// c: the first backup is running.
		backup("c-1", "c", backstopv1alpha1.BackupRunning, -time.Minute),
	}
	drilled := at(-90 * time.Minute)
	a := target("a")
	a.Status.LastVerifiedBackup, a.Status.LastVerifiedTime = "a-2", &drilled
	out := buildStatus(now, []backstopv1alpha1.BackupTarget{target("d"), target("c"), target("b"), a}, stores, schedules, backups)
	if len(out) != 1 || !out[0].Failing {
		t.Fatalf("want one failing namespace, got %+v", out)
	}
	got := map[string]string{}
	for _, r := range out[0].Targets {
		got[r.Target] = r.Status + " " + r.LastSuccessfulBackup + " " + r.StoredSize + " " + r.Store + "=" + r.StoreReady
	}
	want := map[string]string{
		"a": "OK a-2 3.6Ki s3=Ready",
		"b": "Failing b-1 3.6Ki s3=Ready",
		"c": "Running   s3=Ready",
		"d": "Failing   gone=NotFound",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows:\n got %v\nwant %v", got, want)
	}
	if names := []string{out[0].Targets[0].Target, out[0].Targets[3].Target}; names[0] != "a" || names[1] != "d" {
		t.Errorf("rows not sorted by target: %v", names)
	}
	if r := out[0].Targets[0]; r.NextRun == nil || !r.NextRun.Equal(&next) {
		t.Errorf("a: next run %v, want %v", r.NextRun, next)
	}
	if !out[0].Targets[3].Suspended {
		t.Error("d: all its schedules are suspended")
	}
	if want := []string{"BackupStore unused: StoreUnreachable: m"}; !reflect.DeepEqual(out[0].Problems, want) {
		t.Errorf("problems %q, want %q", out[0].Problems, want)
	}

	var sb strings.Builder
	writeStatusTable(&sb, out[0], now)
	if !strings.Contains(sb.String(), "Failing: BackupStore unused: StoreUnreachable: m\n") {
		t.Errorf("table does not list the failing store:\n%s", sb.String())
	}
	if l := lineOf(sb.String(), "a "); !strings.Contains(l, " 3.6Ki ") || !strings.Contains(l, " 90m ago ") || !strings.Contains(l, " in 60m ") || !strings.Contains(l, " s3 (Ready) ") {
		t.Errorf("row of a: %q", l)
	}
	if l := lineOf(sb.String(), "b "); !strings.Contains(l, " 3.6Ki  -  ") {
		t.Errorf("row of b, never verified: %q", l)
	}
	if l := lineOf(sb.String(), "d "); !strings.Contains(l, " suspended ") || !strings.Contains(l, "<none>") {
		t.Errorf("row of d: %q", l)
	}
}

func lineOf(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestParseTakesFlagsAfterArguments(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	wait := fs.Bool("wait", false, "")
	ns := fs.String("n", "", "")
	pos, err := parse(fs, []string{"nightly", "--wait", "-n", "shop", "--", "-x"})
	if err != nil {
		t.Fatal(err)
	}
	if !*wait || *ns != "shop" || !reflect.DeepEqual(pos, []string{"nightly", "-x"}) {
		t.Errorf("wait=%v ns=%q pos=%q", *wait, *ns, pos)
	}
	if _, err := parse(fs, []string{"--nope"}); err == nil {
		t.Error("an unknown flag parsed")
	}
}

// A target's row names the cause: its store's failure rather than the
// schedule's StoreNotReady that repeats it; a schedule's own problem when
// nothing else fails.
func TestBuildStatus_CauseBeforeTheScheduleThatRepeatsIt(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	target := func(name string) backstopv1alpha1.BackupTarget {
		return backstopv1alpha1.BackupTarget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Status: backstopv1alpha1.BackupTargetStatus{Engine: "files"}}
	}
	schedule := func(name, target, store, reason string) backstopv1alpha1.BackupSchedule {
		return backstopv1alpha1.BackupSchedule{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
			Spec:   backstopv1alpha1.BackupScheduleSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: target}, StoreRef: backstopv1alpha1.LocalObjectReference{Name: store}},
			Status: backstopv1alpha1.BackupScheduleStatus{ObjectStatus: backstopv1alpha1.ObjectStatus{Conditions: cond(metav1.ConditionFalse, reason)}}}
	}
	stores := []backstopv1alpha1.BackupStore{
		{ObjectMeta: metav1.ObjectMeta{Name: "down", Namespace: "ns"}, Status: backstopv1alpha1.BackupStoreStatus{ObjectStatus: backstopv1alpha1.ObjectStatus{Conditions: cond(metav1.ConditionFalse, "StoreUnreachable")}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "up", Namespace: "ns"}, Status: backstopv1alpha1.BackupStoreStatus{ObjectStatus: backstopv1alpha1.ObjectStatus{Conditions: cond(metav1.ConditionTrue, "Succeeded")}}},
	}
	schedules := []backstopv1alpha1.BackupSchedule{
		schedule("a-nightly", "a", "down", backstopv1alpha1.ReasonStoreNotReady),
		schedule("b-nightly", "b", "up", backstopv1alpha1.ReasonInvalidSchedule),
	}
	out := buildStatus(now, []backstopv1alpha1.BackupTarget{target("a"), target("b")}, stores, schedules, nil)
	got := map[string]string{}
	for _, r := range out[0].Targets {
		got[r.Target] = r.Status + ": " + r.Message
	}
	want := map[string]string{
		"a": "Failing: BackupStore down: StoreUnreachable: m",
		"b": "Failing: BackupSchedule b-nightly: InvalidSchedule: m",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows:\n got %v\nwant %v", got, want)
	}
}
