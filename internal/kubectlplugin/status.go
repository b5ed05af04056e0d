package kubectlplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/humanize"
)

// TargetStatus is one row of `status`: a target and how its backups fare.
type TargetStatus struct {
	Target string `json:"target"`
	Engine string `json:"engine,omitempty"`
	// Status is OK, Failing, Running, NotReady or NoBackup.
	Status string `json:"status"`
	// Message says why, when Status is not OK.
	Message                  string       `json:"message,omitempty"`
	LastSuccessfulBackup     string       `json:"lastSuccessfulBackup,omitempty"`
	LastSuccessfulBackupTime *metav1.Time `json:"lastSuccessfulBackupTime,omitempty"`
	StoredBytes              int64        `json:"storedBytes,omitempty"`
	StoredSize               string       `json:"storedSize,omitempty"`
	NextRun                  *metav1.Time `json:"nextRun,omitempty"`
	// LastVerifiedBackup is the target's newest Backup a drill restored
	// and checked, and LastVerifiedTime when that drill finished.
	LastVerifiedBackup string       `json:"lastVerifiedBackup,omitempty"`
	LastVerifiedTime   *metav1.Time `json:"lastVerifiedTime,omitempty"`
	Schedules          []string     `json:"schedules,omitempty"`
	Suspended          bool         `json:"suspended,omitempty"`
	Store              string       `json:"store,omitempty"`
	StoreReady         string       `json:"storeReady,omitempty"`
}

// NamespaceStatus is the status of one namespace.
type NamespaceStatus struct {
	Namespace string         `json:"namespace"`
	Targets   []TargetStatus `json:"targets"`
	// Problems are failing objects other than the targets' rows say.
	Problems []string `json:"problems,omitempty"`
	// Failing is true when anything here fails.
	Failing bool `json:"failing"`
}

func (r *runner) status(ctx context.Context, args []string) error {
	fs := r.flags(true, true)
	if _, err := r.parseN(fs, args); err != nil {
		return err
	}
	if err := r.connect(); err != nil {
		return err
	}
	var opts []client.ListOption
	if !r.conn.all {
		opts = append(opts, client.InNamespace(r.ns))
	}
	var (
		targets   backstopv1alpha1.BackupTargetList
		stores    backstopv1alpha1.BackupStoreList
		schedules backstopv1alpha1.BackupScheduleList
		backups   backstopv1alpha1.BackupList
	)
	for _, l := range []client.ObjectList{&targets, &stores, &schedules, &backups} {
		if err := r.c.List(ctx, l, opts...); err != nil {
			return err
		}
	}
	out := buildStatus(time.Now(), targets.Items, stores.Items, schedules.Items, backups.Items)
	if r.conn.all && len(out) == 0 {
		fmt.Fprintln(r.io.Stderr, "No BackupTargets found in any namespace.")
		return nil
	}
	if !r.conn.all && len(out) == 0 {
		fmt.Fprintf(r.io.Stderr, "No BackupTargets found in namespace %s.\n", r.ns)
		return nil
	}
	failing := 0
	for _, n := range out {
		if n.Failing {
			failing++
		}
	}
	switch r.conn.output {
	case "json", "yaml":
		if err := writeData(r.io.Stdout, r.conn.output, out); err != nil {
			return err
		}
	default:
		now := time.Now()
		for i, n := range out {
			if i > 0 {
				fmt.Fprintln(r.io.Stdout)
			}
			writeStatusTable(r.io.Stdout, n, now)
		}
	}
	if failing > 0 {
		return failedError{}
	}
	return nil
}

func buildStatus(now time.Time, targets []backstopv1alpha1.BackupTarget, stores []backstopv1alpha1.BackupStore,
	schedules []backstopv1alpha1.BackupSchedule, backups []backstopv1alpha1.Backup) []NamespaceStatus {
	byNS := map[string]*NamespaceStatus{}
	nsOf := func(ns string) *NamespaceStatus {
		if byNS[ns] == nil {
			byNS[ns] = &NamespaceStatus{Namespace: ns}
		}
		return byNS[ns]
	}
	storeReady := map[string]*metav1.Condition{}
	for i := range stores {
		s := &stores[i]
		storeReady[s.Namespace+"/"+s.Name] = ready(s.Status.Conditions)
	}
	for i := range targets {
		t := &targets[i]
		n := nsOf(t.Namespace)
		row := TargetStatus{Target: t.Name, Engine: t.Status.Engine, Status: "OK",
			LastVerifiedBackup: t.Status.LastVerifiedBackup, LastVerifiedTime: t.Status.LastVerifiedTime}
		fail := func(status, msg string) {
			if row.Status == "OK" || row.Status == "NoBackup" || row.Status == "Running" {
				row.Status, row.Message = status, msg
			}
		}

		var mine []*backstopv1alpha1.Backup
		for j := range backups {
			b := &backups[j]
			if b.Namespace == t.Namespace && b.Spec.TargetRef.Name == t.Name {
				mine = append(mine, b)
			}
		}
		sort.Slice(mine, func(a, b int) bool {
			ta, tb := mine[a].CreationTimestamp.Time, mine[b].CreationTimestamp.Time
			if !ta.Equal(tb) {
				return ta.After(tb)
			}
			return mine[a].Name > mine[b].Name
		})
		var lastOK, lastDone *backstopv1alpha1.Backup
		running := false
		for _, b := range mine {
			switch b.Status.Phase {
			case backstopv1alpha1.BackupSucceeded:
				if lastOK == nil || completion(b).After(completion(lastOK)) {
					lastOK = b
				}
				if lastDone == nil {
					lastDone = b
				}
			case backstopv1alpha1.BackupFailed:
				if lastDone == nil {
					lastDone = b
				}
			default:
				running = true
			}
		}
		if lastOK != nil {
			row.LastSuccessfulBackup = lastOK.Name
			t := metav1.NewTime(completion(lastOK))
			row.LastSuccessfulBackupTime = &t
			row.StoredBytes = lastOK.Status.StoredBytes
			row.StoredSize = humanize.Bytes(lastOK.Status.StoredBytes)
		}

		var next *time.Time
		allSuspended := true
		// A schedule's own problem comes after its target's and store's:
		// when it only repeats theirs (StoreNotReady, ...), theirs is the cause.
		scheduleProblem := ""
		for j := range schedules {
			s := &schedules[j]
			if s.Namespace != t.Namespace || s.Spec.TargetRef.Name != t.Name {
				continue
			}
			row.Schedules = append(row.Schedules, s.Name)
			if row.Store == "" {
				row.Store = s.Spec.StoreRef.Name
			}
			if s.Spec.Suspend {
				continue
			}
			allSuspended = false
			if c := ready(s.Status.Conditions); c != nil && c.Status == metav1.ConditionFalse && scheduleProblem == "" {
				scheduleProblem = fmt.Sprintf("BackupSchedule %s: %s: %s", s.Name, c.Reason, c.Message)
			}
			if nt := s.Status.NextScheduleTime; nt != nil && (next == nil || nt.Time.Before(*next)) {
				next = &nt.Time
			}
		}
		row.Suspended = len(row.Schedules) > 0 && allSuspended
		if next != nil {
			nt := metav1.NewTime(*next)
			row.NextRun = &nt
		}
		if len(mine) > 0 {
			row.Store = mine[0].Spec.StoreRef.Name
		}

		if c := ready(t.Status.Conditions); c != nil && c.Status == metav1.ConditionFalse {
			fail("NotReady", fmt.Sprintf("BackupTarget: %s: %s", c.Reason, c.Message))
		}
		if row.Store != "" {
			c, ok := storeReady[t.Namespace+"/"+row.Store]
			switch {
			case !ok:
				row.StoreReady = "NotFound"
				fail("Failing", fmt.Sprintf("BackupStore %s not found", row.Store))
			case c == nil:
				row.StoreReady = "Unknown"
			case c.Status == metav1.ConditionTrue:
				row.StoreReady = "Ready"
			default:
				row.StoreReady = c.Reason
				fail("Failing", fmt.Sprintf("BackupStore %s: %s: %s", row.Store, c.Reason, c.Message))
			}
		}
		if scheduleProblem != "" {
			fail("Failing", scheduleProblem)
		}
		if lastDone != nil && lastDone.Status.Phase == backstopv1alpha1.BackupFailed {
			fail("Failing", fmt.Sprintf("Backup %s failed: %s: %s", lastDone.Name, lastDone.Status.Reason, lastDone.Status.Message))
		}
		if row.Status == "OK" && lastOK == nil {
			row.Status, row.Message = "NoBackup", "no successful backup yet"
			if running {
				row.Status, row.Message = "Running", "the first backup is running"
			}
		}
		if row.Status != "OK" && row.Status != "NoBackup" && row.Status != "Running" {
			n.Failing = true
		}
		n.Targets = append(n.Targets, row)
	}
	// Stores that fail and that no row shows.
	for i := range stores {
		s := &stores[i]
		n, ok := byNS[s.Namespace]
		if !ok {
			continue
		}
		if c := storeReady[s.Namespace+"/"+s.Name]; c != nil && c.Status == metav1.ConditionFalse {
			shown := false
			for _, row := range n.Targets {
				shown = shown || row.Store == s.Name
			}
			if !shown {
				n.Problems = append(n.Problems, fmt.Sprintf("BackupStore %s: %s: %s", s.Name, c.Reason, c.Message))
				n.Failing = true
			}
		}
	}
	var out []NamespaceStatus
	for _, ns := range sortedKeys(byNS) {
		n := byNS[ns]
		sort.Slice(n.Targets, func(a, b int) bool { return n.Targets[a].Target < n.Targets[b].Target })
		out = append(out, *n)
	}
	return out
}

func completion(b *backstopv1alpha1.Backup) time.Time {
	if b.Status.CompletionTime != nil {
		return b.Status.CompletionTime.Time
	}
	return b.CreationTimestamp.Time
}

func writeStatusTable(w io.Writer, n NamespaceStatus, now time.Time) {
	fmt.Fprintf(w, "Namespace: %s\n", n.Namespace)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tENGINE\tLAST BACKUP\tAGE\tSIZE\tVERIFIED\tNEXT RUN\tSTORE\tSTATUS")
	for _, t := range n.Targets {
		last, age, size := "<none>", "-", "-"
		if t.LastSuccessfulBackup != "" {
			last, size = t.LastSuccessfulBackup, t.StoredSize
			age = duration.HumanDuration(now.Sub(t.LastSuccessfulBackupTime.Time))
		}
		verified := "-"
		if t.LastVerifiedTime != nil {
			verified = duration.HumanDuration(now.Sub(t.LastVerifiedTime.Time)) + " ago"
		}
		next := "-"
		switch {
		case t.Suspended:
			next = "suspended"
		case t.NextRun != nil:
			if d := t.NextRun.Sub(now); d > 0 {
				next = "in " + duration.HumanDuration(d)
			} else {
				next = "due"
			}
		}
		store := "-"
		if t.Store != "" {
			store = fmt.Sprintf("%s (%s)", t.Store, t.StoreReady)
		}
		engine := t.Engine
		if engine == "" {
			engine = "-"
		}
		status := t.Status
		if t.Message != "" && t.Status != "OK" {
			status += ": " + oneLine(t.Message)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Target, engine, last, age, size, verified, next, store, status)
	}
	_ = tw.Flush()
	for _, p := range n.Problems {
		fmt.Fprintf(w, "Failing: %s\n", oneLine(p))
	}
}

// writeData writes v as JSON or YAML.
func writeData(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// ageOf is how long ago t was, the kubectl way ("5m", "3d"), or "-".
func ageOf(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}
