package e2e

import (
	"context"
	"path"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/controllers"
	"github.com/backstop-io/backstop/internal/testutil/pgserver"
)

// waitDrill waits for a BackupDrill to reach a final phase and returns it.
func (e *env) waitDrill(t *testing.T, ns, name string, timeout time.Duration) *backstopv1alpha1.BackupDrill {
	t.Helper()
	dr := &backstopv1alpha1.BackupDrill{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, dr)).To(Succeed())
		g.Expect(dr.Status.Phase).To(BeElementOf(backstopv1alpha1.DrillSucceeded, backstopv1alpha1.DrillFailed))
	}).WithTimeout(timeout).WithPolling(250 * time.Millisecond).Should(Succeed())
	return dr
}

// verifiedOf waits for a Backup's Verified condition to leave Unknown.
func (e *env) verifiedOf(t *testing.T, ns, name string) (*backstopv1alpha1.Backup, *metav1.Condition) {
	t.Helper()
	bk := &backstopv1alpha1.Backup{}
	var c *metav1.Condition
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, bk)).To(Succeed())
		c = meta.FindStatusCondition(bk.Status.Conditions, backstopv1alpha1.ConditionVerified)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).NotTo(Equal(metav1.ConditionUnknown), "Verified: %s: %s", c.Reason, c.Message)
	}).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
	return bk, c
}

// testScheduleDrills: a schedule with drills backs up PostgreSQL, drills the
// Backup through the real agent into a throwaway server in the drill's pod,
// and marks it Verified with the rows restored and the time to restore; a
// backup of the database emptied since fails the target's check, and its
// Backup is Verified=False with reason CheckFailed.
func testScheduleDrills(t *testing.T, e *env, pg *pgserver.Server) {
	g := NewWithT(t)
	ns := e.namespace(t)
	store := e.s3Store("minio", ns)
	target := pgTarget(t, e, pg, ns, "drill_db")
	g.Eventually(func() error {
		if err := e.k8s.Get(context.Background(), client.ObjectKeyFromObject(target), target); err != nil {
			return err
		}
		target.Spec.DrillChecks = []backstopv1alpha1.DrillCheck{{Name: "has-orders", SQL: "SELECT count(*) > 0 FROM orders", Expect: "t"}}
		return e.k8s.Update(context.Background(), target)
	}).WithTimeout(10 * time.Second).Should(Succeed())
	e.create(t, store)
	e.waitReady(t, store)
	e.waitReady(t, target)

	sched := &backstopv1alpha1.BackupSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: "drilled", Namespace: ns},
		Spec: backstopv1alpha1.BackupScheduleSpec{
			TargetRef: backstopv1alpha1.LocalObjectReference{Name: target.Name},
			StoreRef:  backstopv1alpha1.LocalObjectReference{Name: store.Name},
			Schedule:  "* * * * *",
			Drill: &backstopv1alpha1.DrillPolicy{DrillSettings: backstopv1alpha1.DrillSettings{
				Checks: []backstopv1alpha1.DrillCheck{{Name: "two-customers", SQL: "SELECT count(*) FROM customers", Expect: "2"}},
			}},
		},
	}
	e.create(t, sched)
	g.Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKeyFromObject(sched), sched)).To(Succeed())
		g.Expect(sched.Status.NextScheduleTime).NotTo(BeNil())
	}).WithTimeout(30 * time.Second).Should(Succeed())
	// The operator's clock may be ahead of this one (earlier subtests moved
	// it): its first due time is the one it says, and may have passed already
	// (then it ran at once). Else the clock is moved to it.
	if sched.Status.LastBackupName == "" {
		e.clock.setNow(sched.Status.NextScheduleTime.Add(-2 * time.Second))
	}
	g.Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKeyFromObject(sched), sched)).To(Succeed())
		g.Expect(sched.Status.LastBackupName).NotTo(BeEmpty())
	}).WithTimeout(90 * time.Second).Should(Succeed())
	// No more backups: the drills of the last one are what is tested. The
	// schedule moves to a far due time (suspended, it would not drill).
	// Another due time may have come before the change took hold: the last
	// Backup is the one the schedule names once it has.
	g.Eventually(func() error {
		if err := e.k8s.Get(context.Background(), client.ObjectKeyFromObject(sched), sched); err != nil {
			return err
		}
		sched.Spec.Schedule = "0 0 1 1 *"
		return e.k8s.Update(context.Background(), sched)
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKeyFromObject(sched), sched)).To(Succeed())
		g.Expect(sched.Status.ObservedGeneration).To(Equal(sched.Generation))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	name := sched.Status.LastBackupName
	bk := e.waitBackup(t, ns, name, 90*time.Second)
	g.Expect(bk.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", bk.Status.Reason, bk.Status.Message)

	dr := e.waitDrill(t, ns, controllers.DrillNameFor(name), 3*time.Minute)
	g.Expect(dr.Status.Phase).To(Equal(backstopv1alpha1.DrillSucceeded), "%s: %s", dr.Status.Reason, dr.Status.Message)
	g.Expect(metav1.IsControlledBy(dr, bk)).To(BeTrue(), "a schedule's drill is owned by its Backup")
	var checks []string
	for _, c := range dr.Status.Checks {
		g.Expect(c.Passed).To(BeTrue(), "check %s: %s", c.Name, c.Message)
		checks = append(checks, c.Name)
	}
	g.Expect(checks).To(Equal([]string{"integrity", "tables", "has-orders", "two-customers"}))
	g.Expect(dr.Status.ChecksPassed).To(Equal("4/4"))
	g.Expect(dr.Status.Tables).To(BeNumerically("==", 2))
	g.Expect(dr.Status.Rows).To(BeNumerically("==", 502))
	g.Expect(dr.Status.RestoreDuration).NotTo(BeNil())
	g.Expect(dr.Status.RestoreDuration.Duration).To(BeNumerically(">", 0))
	g.Expect(dr.Status.Server).To(ContainSubstring("PostgreSQL"))

	bk, verified := e.verifiedOf(t, ns, name)
	g.Expect(verified.Status).To(Equal(metav1.ConditionTrue), "%s: %s", verified.Reason, verified.Message)
	g.Expect(verified.Reason).To(Equal(backstopv1alpha1.ReasonDrillPassed))
	g.Expect(bk.Status.Verification).NotTo(BeNil())
	g.Expect(bk.Status.Verification.DrillName).To(Equal(dr.Name))
	g.Expect(bk.Status.Verification.Passed).To(BeNumerically("==", 4))
	g.Expect(bk.Status.Verification.Rows).To(BeNumerically("==", 502))
	g.Expect(bk.Status.Verification.RestoreDuration).NotTo(BeNil())
	g.Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKeyFromObject(sched), sched)).To(Succeed())
		g.Expect(sched.Status.LastVerifiedBackup).To(Equal(name))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Eventually(func() []string { return e.eventReasons(t, ns, name) }).WithTimeout(10 * time.Second).Should(ContainElement(controllers.ReasonVerified))
	g.Eventually(func() []string { return e.eventReasons(t, ns, dr.Name) }).WithTimeout(10 * time.Second).Should(ContainElement(controllers.ReasonVerified))
	g.Expect(metricValue(t, "backstop_drills_total", map[string]string{"namespace": ns, "result": "Succeeded"})).To(BeNumerically(">=", 1))
	g.Eventually(func() float64 {
		return metricValue(t, "backstop_backup_verified_timestamp_seconds", map[string]string{"namespace": ns, "schedule": sched.Name})
	}).WithTimeout(30 * time.Second).Should(BeNumerically("==", float64(bk.Status.Verification.Time.Unix())))

	// The database is emptied; its next backup succeeds, and its drill fails
	// the target's check.
	pg.MustQuery(t, "drill_db", `DELETE FROM orders`)
	e.create(t, onDemandBackup(ns, "emptied", target.Name, store.Name))
	emptied := e.waitBackup(t, ns, "emptied", 90*time.Second)
	g.Expect(emptied.Status.Phase).To(Equal(backstopv1alpha1.BackupSucceeded), "%s: %s", emptied.Status.Reason, emptied.Status.Message)
	e.create(t, &backstopv1alpha1.BackupDrill{
		ObjectMeta: metav1.ObjectMeta{Name: "emptied-drill", Namespace: ns},
		Spec:       backstopv1alpha1.BackupDrillSpec{BackupRef: backstopv1alpha1.LocalObjectReference{Name: "emptied"}},
	})
	dr = e.waitDrill(t, ns, "emptied-drill", 3*time.Minute)
	g.Expect(dr.Status.Phase).To(Equal(backstopv1alpha1.DrillFailed))
	g.Expect(dr.Status.Reason).To(Equal(backstopv1alpha1.ReasonCheckFailed), dr.Status.Message)
	g.Expect(dr.Status.Message).To(ContainSubstring("has-orders"))
	_, verified = e.verifiedOf(t, ns, "emptied")
	g.Expect(verified.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(verified.Reason).To(Equal(backstopv1alpha1.ReasonCheckFailed))
	g.Eventually(func() []string { return e.eventReasons(t, ns, "emptied") }).WithTimeout(10 * time.Second).Should(ContainElement(controllers.ReasonDrillFailed))
	g.Expect(metricValue(t, "backstop_drills_total", map[string]string{"namespace": ns, "result": "Failed", "reason": backstopv1alpha1.ReasonCheckFailed})).To(BeNumerically(">=", 1))

	// The drills restored into their own throwaway servers: the source is
	// still as the test left it, empty.
	g.Expect(pg.MustQuery(t, "drill_db", "SELECT count(*) FROM orders")).To(Equal("0"))

	// A bit of the first backup's artifact flipped in the store: a drill of
	// it fails integrity before restoring anything, and the Backup is no
	// longer Verified.
	e.minio.FlipBit(t, path.Join("e2e", bk.Status.ArtifactPath, bk.Status.DataObject), bk.Status.StoredBytes/2)
	e.create(t, &backstopv1alpha1.BackupDrill{
		ObjectMeta: metav1.ObjectMeta{Name: "flipped-drill", Namespace: ns},
		Spec:       backstopv1alpha1.BackupDrillSpec{BackupRef: backstopv1alpha1.LocalObjectReference{Name: name}},
	})
	dr = e.waitDrill(t, ns, "flipped-drill", 3*time.Minute)
	g.Expect(dr.Status.Phase).To(Equal(backstopv1alpha1.DrillFailed))
	g.Expect(dr.Status.Reason).To(Equal(backstopv1alpha1.ReasonIntegrityMismatch), dr.Status.Message)
	g.Expect(dr.Status.Checks).To(HaveLen(1))
	g.Expect(dr.Status.Checks[0].Name).To(Equal("integrity"))
	g.Expect(dr.Status.Checks[0].Passed).To(BeFalse())
	g.Eventually(func(g Gomega) {
		g.Expect(e.k8s.Get(context.Background(), client.ObjectKeyFromObject(bk), bk)).To(Succeed())
		c := meta.FindStatusCondition(bk.Status.Conditions, backstopv1alpha1.ConditionVerified)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(backstopv1alpha1.ReasonIntegrityMismatch))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}
