package kubectlplugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/controllers"
	"github.com/backstop-io/backstop/internal/humanize"
)

// pollInterval is how often --wait reads the object it follows.
var pollInterval = time.Second

func (r *runner) backup(ctx context.Context, args []string) error {
	fs := r.flags(false, false)
	store := fs.String("store", "", "the BackupStore (default: the schedule's, or the namespace's only store)")
	wait := fs.Bool("wait", false, "follow the Backup to its end; exit 1 if it fails")
	pos, err := r.parseN(fs, args, "<schedule|target>")
	if err != nil {
		return err
	}
	if err := r.connect(); err != nil {
		return err
	}
	name := pos[0]
	var spec backstopv1alpha1.BackupSpec
	from := ""
	sched := &backstopv1alpha1.BackupSchedule{}
	err = r.c.Get(ctx, r.key(name), sched)
	switch {
	case err == nil:
		spec = controllers.BackupSpecOf(sched)
		from = "schedule " + sched.Name
	case apierrors.IsNotFound(err):
		target := &backstopv1alpha1.BackupTarget{}
		if err := r.c.Get(ctx, r.key(name), target); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("no BackupSchedule or BackupTarget %q in namespace %q", name, r.ns)
			}
			return err
		}
		spec, from, err = r.targetBackupSpec(ctx, target, *store)
		if err != nil {
			return err
		}
	default:
		return err
	}
	if *store != "" {
		spec.StoreRef = backstopv1alpha1.LocalObjectReference{Name: *store}
	}
	if err := r.c.Get(ctx, r.key(spec.StoreRef.Name), &backstopv1alpha1.BackupStore{}); err != nil {
		return err
	}
	bk := &backstopv1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: name + "-manual-",
			Namespace:    r.ns,
			Labels:       map[string]string{controllers.LabelTarget: spec.TargetRef.Name},
		},
		Spec: spec,
	}
	if err := r.c.Create(ctx, bk); err != nil {
		return err
	}
	fmt.Fprintf(r.io.Stdout, "backup.backstop.io/%s created (target %s, store %s, settings of %s)\n", bk.Name, spec.TargetRef.Name, spec.StoreRef.Name, from)
	if !*wait {
		return nil
	}
	return r.followBackup(ctx, bk.Name)
}

// targetBackupSpec is the spec of an on-demand Backup of a target: the
// settings of its only schedule, else of no schedule with the given store or
// the namespace's only store.
func (r *runner) targetBackupSpec(ctx context.Context, t *backstopv1alpha1.BackupTarget, store string) (backstopv1alpha1.BackupSpec, string, error) {
	var scheds backstopv1alpha1.BackupScheduleList
	if err := r.c.List(ctx, &scheds, client.InNamespace(r.ns)); err != nil {
		return backstopv1alpha1.BackupSpec{}, "", err
	}
	var mine []backstopv1alpha1.BackupSchedule
	for _, s := range scheds.Items {
		if s.Spec.TargetRef.Name == t.Name && (store == "" || s.Spec.StoreRef.Name == store) {
			mine = append(mine, s)
		}
	}
	if len(mine) == 1 {
		return controllers.BackupSpecOf(&mine[0]), "schedule " + mine[0].Name, nil
	}
	spec := backstopv1alpha1.BackupSpec{TargetRef: backstopv1alpha1.LocalObjectReference{Name: t.Name}}
	if store != "" {
		return spec, "no schedule", nil
	}
	if len(mine) > 1 {
		return spec, "", usagef("target %s has %d schedules: name one, or give --store", t.Name, len(mine))
	}
	var stores backstopv1alpha1.BackupStoreList
	if err := r.c.List(ctx, &stores, client.InNamespace(r.ns)); err != nil {
		return spec, "", err
	}
	if len(stores.Items) != 1 {
		return spec, "", usagef("target %s has no schedule and namespace %s has %d BackupStores: give --store", t.Name, r.ns, len(stores.Items))
	}
	spec.StoreRef.Name = stores.Items[0].Name
	return spec, "no schedule", nil
}

// followBackup prints a Backup's progress until it ends.
func (r *runner) followBackup(ctx context.Context, name string) error {
	p := r.newProgress()
	for {
		bk := &backstopv1alpha1.Backup{}
		if err := r.c.Get(ctx, r.key(name), bk); err != nil {
			return err
		}
		switch bk.Status.Phase {
		case backstopv1alpha1.BackupSucceeded:
			p.show(string(bk.Status.Phase), nil)
			same := ""
			if bk.Status.SameContentAs != "" {
				same = fmt.Sprintf(", same data as %s", bk.Status.SameContentAs)
			}
			fmt.Fprintf(r.io.Stdout, "Backup %s succeeded: %s stored (%s of dump) at %s%s\n", name,
				humanize.Bytes(bk.Status.StoredBytes), humanize.Bytes(bk.Status.PlaintextBytes), bk.Status.ArtifactPath, same)
			return nil
		case backstopv1alpha1.BackupFailed:
			p.show(string(bk.Status.Phase), nil)
			return failedError{fmt.Sprintf("Backup %s failed: %s: %s", name, bk.Status.Reason, oneLine(bk.Status.Message))}
		}
		p.show(string(bk.Status.Phase), bk.Status.Conditions)
		if err := sleep(ctx, pollInterval); err != nil {
			return err
		}
	}
}

// progress prints the status line of a Backup or Restore being followed,
// each time it changes, with the time since the wait began.
type progress struct {
	w     io.Writer
	start time.Time
	last  string
}

func (r *runner) newProgress() *progress {
	return &progress{w: r.io.Stdout, start: time.Now()}
}

// show prints the phase ("Pending" before the first), with the Ready
// condition's message while it runs (conds nil once it has ended).
func (p *progress) show(phase string, conds []metav1.Condition) {
	line := phase
	if line == "" {
		line = "Pending"
	}
	if c := ready(conds); c != nil && c.Message != "" {
		line += ": " + oneLine(c.Message)
	}
	if line != p.last {
		fmt.Fprintf(p.w, "%6s  %s\n", time.Since(p.start).Truncate(time.Second), line)
		p.last = line
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (r *runner) restore(ctx context.Context, args []string) error {
	fs := r.flags(false, false)
	to := fs.String("to", "", "the BackupTarget to replace (default: the Backup's own)")
	wait := fs.Bool("wait", false, "follow the Restore to its end; exit 1 if it fails")
	yes := fs.Bool("yes", false, "do not ask: the target's data is replaced")
	safety := fs.Bool("safety-backup", false, "back up the target's current data first")
	lockTimeout := fs.Duration("lock-timeout", 0, "how long to wait for other sessions' locks on the target's tables before failing, changing nothing (default: 1m)")
	pos, err := r.parseN(fs, args, "<backup>")
	if err != nil {
		return err
	}
	if err := r.connect(); err != nil {
		return err
	}
	bk := &backstopv1alpha1.Backup{}
	if err := r.c.Get(ctx, r.key(pos[0]), bk); err != nil {
		return err
	}
	if bk.Status.Phase != backstopv1alpha1.BackupSucceeded {
		return fmt.Errorf("Backup %s is %s, not Succeeded: there is nothing to restore", bk.Name, phaseOr(string(bk.Status.Phase)))
	}
	targetName := bk.Spec.TargetRef.Name
	if *to != "" {
		targetName = *to
	}
	target := &backstopv1alpha1.BackupTarget{}
	if err := r.c.Get(ctx, r.key(targetName), target); err != nil {
		return err
	}
	fmt.Fprintf(r.io.Stdout, "Restore Backup %s (taken %s, %s, %s) into BackupTarget %s/%s.\n",
		bk.Name, completion(bk).UTC().Format(time.RFC3339), humanize.Bytes(bk.Status.StoredBytes), phaseOr(bk.Status.Engine), r.ns, target.Name)
	fmt.Fprintf(r.io.Stdout, "This WIPES %s and replaces it with the backup.\n", describeData(target))
	if !*yes {
		if !r.io.StdinIsTerminal {
			return errors.New("refusing to restore without confirmation: stdin is not a terminal; pass --yes to replace the data")
		}
		fmt.Fprintf(r.io.Stdout, "Type the target's name (%s) to go on: ", target.Name)
		answer, _ := bufio.NewReader(r.io.Stdin).ReadString('\n')
		if strings.TrimSpace(answer) != target.Name {
			return failedError{"not confirmed; nothing was changed"}
		}
	}
	rs := &backstopv1alpha1.Restore{
		ObjectMeta: metav1.ObjectMeta{GenerateName: bk.Name + "-restore-", Namespace: r.ns},
		Spec: backstopv1alpha1.RestoreSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: target.Name},
			Source:    backstopv1alpha1.RestoreSource{BackupRef: &backstopv1alpha1.LocalObjectReference{Name: bk.Name}},
		},
	}
	if *safety {
		rs.Spec.SafetyBackup = &backstopv1alpha1.SafetyBackup{Enabled: true}
	}
	if *lockTimeout != 0 {
		rs.Spec.LockTimeout = &metav1.Duration{Duration: *lockTimeout}
	}
	if err := r.c.Create(ctx, rs); err != nil {
		return err
	}
	fmt.Fprintf(r.io.Stdout, "restore.backstop.io/%s created\n", rs.Name)
	if !*wait {
		return nil
	}
	return r.followRestore(ctx, rs.Name)
}

func phaseOr(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// describeData says in words what a target's data is.
func describeData(t *backstopv1alpha1.BackupTarget) string {
	hostPort := func(c backstopv1alpha1.DatabaseConnection) string {
		if c.Port != nil {
			return fmt.Sprintf("%s:%d", c.Host, *c.Port)
		}
		return c.Host
	}
	switch {
	case t.Spec.Postgres != nil:
		return fmt.Sprintf("PostgreSQL database %q on %s", t.Spec.Postgres.Database, hostPort(t.Spec.Postgres.DatabaseConnection))
	case t.Spec.MySQL != nil:
		return fmt.Sprintf("MySQL/MariaDB database(s) %s on %s", strings.Join(t.Spec.MySQL.Databases, ", "), hostPort(t.Spec.MySQL.DatabaseConnection))
	case t.Spec.Files != nil:
		p := t.Spec.Files.Path
		if p == "" {
			p = "/"
		}
		return fmt.Sprintf("every file under %s of PersistentVolumeClaim %s", p, t.Spec.Files.ClaimName)
	}
	return "the target's data"
}

// followRestore prints a Restore's progress until it ends.
func (r *runner) followRestore(ctx context.Context, name string) error {
	p := r.newProgress()
	for {
		rs := &backstopv1alpha1.Restore{}
		if err := r.c.Get(ctx, r.key(name), rs); err != nil {
			return err
		}
		switch rs.Status.Phase {
		case backstopv1alpha1.RestoreSucceeded:
			p.show(string(rs.Status.Phase), nil)
			fmt.Fprintf(r.io.Stdout, "Restore %s succeeded\n", name)
			return nil
		case backstopv1alpha1.RestoreFailed:
			p.show(string(rs.Status.Phase), nil)
			return failedError{fmt.Sprintf("Restore %s failed: %s: %s", name, rs.Status.Reason, oneLine(rs.Status.Message))}
		}
		p.show(string(rs.Status.Phase), rs.Status.Conditions)
		if err := sleep(ctx, pollInterval); err != nil {
			return err
		}
	}
}

func (r *runner) suspend(ctx context.Context, args []string, suspend bool) error {
	fs := r.flags(false, false)
	pos, err := r.parseN(fs, args, "<schedule>")
	if err != nil {
		return err
	}
	if err := r.connect(); err != nil {
		return err
	}
	s := &backstopv1alpha1.BackupSchedule{ObjectMeta: metav1.ObjectMeta{Name: pos[0], Namespace: r.ns}}
	patch := fmt.Sprintf(`{"spec":{"suspend":%t}}`, suspend)
	if err := r.c.Patch(ctx, s, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return err
	}
	word := "resumed"
	if suspend {
		word = "suspended"
	}
	fmt.Fprintf(r.io.Stdout, "backupschedule.backstop.io/%s %s\n", s.Name, word)
	return nil
}
