package kubectlplugin

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/controllers"
	"github.com/backstop-io/backstop/internal/humanize"
)

// lookup finds a Backup or a Restore by name; "backup/x" and "restore/x"
// say which.
func (r *runner) lookup(ctx context.Context, ref string) (client.Object, error) {
	kind, name, found := strings.Cut(ref, "/")
	if !found {
		kind, name = "", ref
	}
	switch strings.ToLower(kind) {
	case "", "backup", "backups", "bk", "backup.backstop.io", "restore", "restores", "brestore", "restore.backstop.io":
	default:
		return nil, usagef("%s: not a Backup or a Restore", ref)
	}
	var candidates []client.Object
	switch strings.ToLower(kind) {
	case "":
		candidates = []client.Object{&backstopv1alpha1.Backup{}, &backstopv1alpha1.Restore{}}
	case "backup", "backups", "bk", "backup.backstop.io":
		candidates = []client.Object{&backstopv1alpha1.Backup{}}
	default:
		candidates = []client.Object{&backstopv1alpha1.Restore{}}
	}
	var lastErr error
	for _, o := range candidates {
		err := r.c.Get(ctx, r.key(name), o)
		if err == nil {
			return o, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		lastErr = err
	}
	if len(candidates) > 1 {
		return nil, fmt.Errorf("no Backup or Restore %q in namespace %q", name, r.ns)
	}
	return nil, lastErr
}

// backupOrRestoreArg parses a command line naming one Backup or Restore,
// connects, and reads it.
func (r *runner) backupOrRestoreArg(ctx context.Context, fs *flag.FlagSet, args []string) (client.Object, error) {
	pos, err := r.parseN(fs, args, "<backup|restore>")
	if err != nil {
		return nil, err
	}
	if err := r.connect(); err != nil {
		return nil, err
	}
	return r.lookup(ctx, pos[0])
}

func (r *runner) describe(ctx context.Context, args []string) error {
	obj, err := r.backupOrRestoreArg(ctx, r.flags(false, true), args)
	if err != nil {
		return err
	}
	if r.conn.output != "" {
		obj.SetManagedFields(nil)
		return writeData(r.io.Stdout, r.conn.output, obj)
	}
	now := time.Now()
	w := r.io.Stdout
	kind := "Backup"
	var conds []metav1.Condition
	switch o := obj.(type) {
	case *backstopv1alpha1.Backup:
		describeBackup(w, o, now)
		conds = o.Status.Conditions
	case *backstopv1alpha1.Restore:
		kind = "Restore"
		describeRestore(w, o, now)
		conds = o.Status.Conditions
	}
	writeConditions(w, conds, now)
	cs, err := r.clientset()
	if err != nil {
		return err
	}
	events, err := cs.CoreV1().Events(r.ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
		"involvedObject.name": obj.GetName(), "involvedObject.kind": kind,
	}.String()})
	if err != nil {
		return err
	}
	writeEvents(w, events.Items, now)
	return nil
}

func field(w io.Writer, name, value string) {
	if value == "" {
		return
	}
	fmt.Fprintf(w, "%-17s %s\n", name+":", value)
}

func timeField(t *metav1.Time, now time.Time) string {
	if t == nil {
		return ""
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), ageOf(t, now))
}

func describeBackup(w io.Writer, b *backstopv1alpha1.Backup, now time.Time) {
	field(w, "Name", b.Name)
	field(w, "Namespace", b.Namespace)
	field(w, "Target", b.Spec.TargetRef.Name)
	field(w, "Store", b.Spec.StoreRef.Name)
	if b.Spec.ScheduleRef != nil {
		field(w, "Schedule", b.Spec.ScheduleRef.Name)
	} else {
		field(w, "Schedule", "<none> (on demand)")
	}
	field(w, "Deletion Policy", string(b.Spec.DeletionPolicy))
	field(w, "Phase", phaseOr(string(b.Status.Phase)))
	if b.Status.Reason != "" {
		field(w, "Reason", b.Status.Reason)
		field(w, "Message", oneLine(b.Status.Message))
	}
	field(w, "Created", timeField(&b.CreationTimestamp, now))
	field(w, "Started", timeField(b.Status.StartTime, now))
	field(w, "Completed", timeField(b.Status.CompletionTime, now))
	if b.Status.StartTime != nil && b.Status.CompletionTime != nil {
		field(w, "Duration", b.Status.CompletionTime.Sub(b.Status.StartTime.Time).String())
	}
	field(w, "Job", b.Status.JobName)
	if b.Status.ArtifactPath != "" {
		fmt.Fprintln(w, "Artifact:")
		fmt.Fprintf(w, "  %-15s %s\n", "Path:", b.Status.ArtifactPath)
		if b.Status.DataObject != "" {
			fmt.Fprintf(w, "  %-15s %s\n", "Data object:", path.Join(b.Status.ArtifactPath, b.Status.DataObject))
			fmt.Fprintf(w, "  %-15s %s\n", "Manifest:", path.Join(b.Status.ArtifactPath, "manifest.json"))
		}
		fmt.Fprintf(w, "  %-15s %s\n", "Engine:", phaseOr(b.Status.Engine))
		if b.Status.StoredBytes > 0 {
			fmt.Fprintf(w, "  %-15s %s (%d bytes)\n", "Stored size:", humanize.Bytes(b.Status.StoredBytes), b.Status.StoredBytes)
			fmt.Fprintf(w, "  %-15s %s (%d bytes)\n", "Dump size:", humanize.Bytes(b.Status.PlaintextBytes), b.Status.PlaintextBytes)
		}
		if b.Status.SHA256 != "" {
			fmt.Fprintf(w, "  %-15s %s\n", "SHA-256:", b.Status.SHA256)
			fmt.Fprintf(w, "  %-15s %s\n", "Dump SHA-256:", b.Status.PlaintextSHA256)
			fmt.Fprintf(w, "  %-15s %s\n", "Content SHA:", b.Status.ContentSHA256)
		}
		if b.Status.SameContentAs != "" {
			fmt.Fprintf(w, "  %-15s %s\n", "Same data as:", b.Status.SameContentAs)
		}
	}
}

func describeRestore(w io.Writer, rs *backstopv1alpha1.Restore, now time.Time) {
	field(w, "Name", rs.Name)
	field(w, "Namespace", rs.Namespace)
	field(w, "Target", rs.Spec.TargetRef.Name)
	src := rs.Spec.Source
	switch {
	case src.BackupRef != nil:
		field(w, "Source", "Backup "+src.BackupRef.Name)
	case src.Path != "":
		field(w, "Source", fmt.Sprintf("path %s in BackupStore %s", src.Path, src.StoreRef.Name))
	case src.LatestOf != "":
		field(w, "Source", fmt.Sprintf("latest backup of %s in BackupStore %s", src.LatestOf, src.StoreRef.Name))
	}
	if rs.Spec.SafetyBackup != nil && rs.Spec.SafetyBackup.Enabled {
		field(w, "Safety Backup", phaseOr(rs.Status.SafetyBackupName))
	}
	if rs.Spec.LockTimeout != nil {
		field(w, "Lock Timeout", rs.Spec.LockTimeout.Duration.String())
	}
	field(w, "Phase", phaseOr(string(rs.Status.Phase)))
	if rs.Status.Reason != "" {
		field(w, "Reason", rs.Status.Reason)
		field(w, "Message", oneLine(rs.Status.Message))
	}
	field(w, "Created", timeField(&rs.CreationTimestamp, now))
	field(w, "Started", timeField(rs.Status.StartTime, now))
	field(w, "Completed", timeField(rs.Status.CompletionTime, now))
	field(w, "Job", rs.Status.JobName)
	if a := rs.Status.Artifact; a != nil {
		fmt.Fprintln(w, "Artifact:")
		fmt.Fprintf(w, "  %-15s %s\n", "Backup:", a.BackupName)
		fmt.Fprintf(w, "  %-15s %s\n", "Store:", a.StoreName)
		fmt.Fprintf(w, "  %-15s %s\n", "Path:", a.Path)
		if a.Path != "" {
			fmt.Fprintf(w, "  %-15s %s\n", "Manifest:", path.Join(a.Path, "manifest.json"))
		}
		fmt.Fprintf(w, "  %-15s %s\n", "SHA-256:", a.SHA256)
	}
}

func writeConditions(w io.Writer, conds []metav1.Condition, now time.Time) {
	fmt.Fprintln(w, "Conditions:")
	if len(conds) == 0 {
		fmt.Fprintln(w, "  <none>")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
	for _, c := range conds {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, ageOf(&c.LastTransitionTime, now), oneLine(c.Message))
	}
	_ = tw.Flush()
}

func writeEvents(w io.Writer, events []corev1.Event, now time.Time) {
	fmt.Fprintln(w, "Events:")
	if len(events) == 0 {
		fmt.Fprintln(w, "  <none>")
		return
	}
	when := func(e *corev1.Event) time.Time {
		switch {
		case !e.EventTime.IsZero():
			return e.EventTime.Time
		case !e.LastTimestamp.IsZero():
			return e.LastTimestamp.Time
		}
		return e.CreationTimestamp.Time
	}
	sort.SliceStable(events, func(a, b int) bool { return when(&events[a]).Before(when(&events[b])) })
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tREASON\tAGE\tMESSAGE")
	for i := range events {
		e := &events[i]
		t := metav1.NewTime(when(e))
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.Type, e.Reason, ageOf(&t, now), oneLine(e.Message))
	}
	_ = tw.Flush()
}

func (r *runner) logs(ctx context.Context, args []string) error {
	obj, err := r.backupOrRestoreArg(ctx, r.flags(false, false), args)
	if err != nil {
		return err
	}
	// Every pod of the object's Jobs: a Restore has a verify Job, then a
	// restore Job.
	var selector string
	switch obj.(type) {
	case *backstopv1alpha1.Backup:
		selector = controllers.LabelBackup + "=" + obj.GetName()
	case *backstopv1alpha1.Restore:
		selector = controllers.LabelRestore + "=" + obj.GetName()
	}
	cs, err := r.clientset()
	if err != nil {
		return err
	}
	pods, err := cs.CoreV1().Pods(r.ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return err
	}
	if len(pods.Items) == 0 {
		return fmt.Errorf("%s has no pods: none started yet, or its Jobs were deleted after their ttlSecondsAfterFinished (the result stays: see describe)", obj.GetName())
	}
	sort.Slice(pods.Items, func(a, b int) bool {
		return pods.Items[a].CreationTimestamp.Before(&pods.Items[b].CreationTimestamp)
	})
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			if len(pods.Items) > 1 || len(p.Spec.Containers) > 1 {
				fmt.Fprintf(r.io.Stdout, "==> pod %s, container %s <==\n", p.Name, c.Name)
			}
			rc, err := cs.CoreV1().Pods(r.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name}).Stream(ctx)
			if err != nil {
				return fmt.Errorf("logs of pod %s: %w", p.Name, err)
			}
			_, err = io.Copy(r.io.Stdout, rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}
