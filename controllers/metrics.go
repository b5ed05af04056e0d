package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
)

// Metrics on controller-runtime's registry, served by the manager's
// authenticated metrics endpoint.
var (
	backupsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backstop_backups_total",
		Help: "Backups finished, by result (Succeeded or Failed) and reason.",
	}, []string{"namespace", "target", "result", "reason"})
	backupLastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backstop_backup_last_success_timestamp_seconds",
		Help: "When the newest successful backup of a target completed.",
	}, []string{"namespace", "target"})
	backupDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "backstop_backup_duration_seconds",
		Help:    "How long backups took, from start to completion.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 16),
	}, []string{"namespace", "target", "result"})
	backupsUnchanged = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backstop_backups_unchanged_total",
		Help: "Successful backups whose content digest equals the previous successful backup's of the same target.",
	}, []string{"namespace", "target"})
	backupStoredBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backstop_backup_stored_bytes",
		Help: "Stored size of the newest successful backup of a target.",
	}, []string{"namespace", "target"})
	restoresTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backstop_restores_total",
		Help: "Restores finished, by result and reason.",
	}, []string{"namespace", "target", "result", "reason"})
	restoreLastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backstop_restore_last_success_timestamp_seconds",
		Help: "When the newest successful restore of a target completed.",
	}, []string{"namespace", "target"})
	restoreDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "backstop_restore_duration_seconds",
		Help:    "How long restores took.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 16),
	}, []string{"namespace", "target", "result"})
	scheduleNextRun = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backstop_schedule_next_run_timestamp_seconds",
		Help: "When the next backup of a schedule is due.",
	}, []string{"namespace", "schedule"})
	scheduleExpectedInterval = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backstop_schedule_expected_interval_seconds",
		Help: "The longest a schedule goes between due times around now (the longer of the gaps before and after its latest due time); alerts add a margin to it.",
	}, []string{"namespace", "schedule"})
	scheduleLastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backstop_schedule_last_success_timestamp_seconds",
		Help: "When the newest successful backup of a schedule completed; the schedule's creation time until one has.",
	}, []string{"namespace", "schedule"})
	scheduleReady = newReadyGauge(prometheus.GaugeOpts{
		Name: "backstop_schedule_ready",
		Help: "1 if a schedule is Ready (it may be suspended), 0 if not; reason is the Ready condition's reason.",
	}, "schedule")
	scheduleSuspended = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backstop_schedule_suspended",
		Help: "1 if a schedule is suspended, 0 if not.",
	}, []string{"namespace", "schedule"})
	drillsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backstop_drills_total",
		Help: "Restore drills finished, by result (Succeeded or Failed) and reason.",
	}, []string{"namespace", "result", "reason"})
	drillDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "backstop_drill_duration_seconds",
		Help:    "Time to restore measured by drills: from the start of the download to the restored data being ready, server start included.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 16),
	}, []string{"namespace", "result"})
	backupVerified = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backstop_backup_verified_timestamp_seconds",
		Help: "When the drill of the newest verified backup of a schedule finished; the schedule's creation time until one has. Only schedules with spec.drill have a series.",
	}, []string{"namespace", "schedule"})
	storeReady = newReadyGauge(prometheus.GaugeOpts{
		Name: "backstop_store_ready",
		Help: "1 if a store passed its last probe (Ready), 0 if not; reason is the Ready condition's reason.",
	}, "store")
)

func init() {
	metrics.Registry.MustRegister(backupsTotal, backupLastSuccess, backupDuration, backupStoredBytes, backupsUnchanged,
		restoresTotal, restoreLastSuccess, restoreDuration, scheduleNextRun, scheduleExpectedInterval, scheduleLastSuccess,
		scheduleReady, scheduleSuspended, storeReady, drillsTotal, drillDuration, backupVerified)
}

func recordBackupMetrics(bk *backstopv1alpha1.Backup) {
	target := bk.Spec.TargetRef.Name
	result := string(bk.Status.Phase)
	backupsTotal.WithLabelValues(bk.Namespace, target, result, bk.Status.Reason).Inc()
	if bk.Status.StartTime != nil && bk.Status.CompletionTime != nil {
		backupDuration.WithLabelValues(bk.Namespace, target, result).Observe(bk.Status.CompletionTime.Sub(bk.Status.StartTime.Time).Seconds())
	}
	if bk.Status.Phase == backstopv1alpha1.BackupSucceeded && bk.Status.CompletionTime != nil {
		backupLastSuccess.WithLabelValues(bk.Namespace, target).Set(float64(bk.Status.CompletionTime.Unix()))
		backupStoredBytes.WithLabelValues(bk.Namespace, target).Set(float64(bk.Status.StoredBytes))
	}
}

// readyGauge is a per-object readiness gauge labelled with the Ready
// condition's reason: one series per object, under its current reason. It
// remembers each object's reason, so that a new reason deletes the one old
// series; DeletePartialMatch would scan every series of the vector on each
// reconcile (5% of the operator's CPU with 1,000 schedules).
type readyGauge struct {
	*prometheus.GaugeVec
	mu      sync.Mutex
	reasons map[types.NamespacedName]string
}

func newReadyGauge(opts prometheus.GaugeOpts, kind string) *readyGauge {
	return &readyGauge{
		GaugeVec: prometheus.NewGaugeVec(opts, []string{"namespace", kind, "reason"}),
		reasons:  map[types.NamespacedName]string{},
	}
}

// record sets the object's series from its Ready condition.
func (g *readyGauge) record(obj conditions.Object) {
	ready, reason := 0.0, "Unknown"
	if c := conditions.Get(obj, backstopv1alpha1.ConditionReady); c != nil {
		reason = c.Reason
		if c.Status == metav1.ConditionTrue {
			ready = 1
		}
	}
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.reasons[key]; ok && old != reason {
		g.DeleteLabelValues(key.Namespace, key.Name, old)
	}
	g.reasons[key] = reason
	g.WithLabelValues(key.Namespace, key.Name, reason).Set(ready)
}

// forget drops the object's series.
func (g *readyGauge) forget(namespace, name string) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	g.mu.Lock()
	defer g.mu.Unlock()
	if reason, ok := g.reasons[key]; ok {
		g.DeleteLabelValues(namespace, name, reason)
		delete(g.reasons, key)
	}
}

// recordScheduleMetrics sets the gauges of a schedule after a reconcile.
// backups are the schedule's Backups, from which the newest success is read
// (so the gauge is right after a restart of the operator too).
func recordScheduleMetrics(bs *backstopv1alpha1.BackupSchedule, interval time.Duration, backups []*backstopv1alpha1.Backup) {
	last := bs.CreationTimestamp.Time
	for _, bk := range backups {
		if bk.Status.Phase == backstopv1alpha1.BackupSucceeded && bk.Status.CompletionTime != nil && bk.Status.CompletionTime.After(last) {
			last = bk.Status.CompletionTime.Time
		}
	}
	scheduleLastSuccess.WithLabelValues(bs.Namespace, bs.Name).Set(float64(last.Unix()))
	if bs.Spec.Drill != nil {
		verified := bs.CreationTimestamp.Time
		if bs.Status.LastVerifiedTime != nil && bs.Status.LastVerifiedTime.After(verified) {
			verified = bs.Status.LastVerifiedTime.Time
		}
		backupVerified.WithLabelValues(bs.Namespace, bs.Name).Set(float64(verified.Unix()))
	} else {
		backupVerified.DeleteLabelValues(bs.Namespace, bs.Name)
	}
	scheduleReady.record(bs)
	suspended := 0.0
	if bs.Spec.Suspend {
		suspended = 1
	}
	scheduleSuspended.WithLabelValues(bs.Namespace, bs.Name).Set(suspended)
	if interval > 0 {
		scheduleExpectedInterval.WithLabelValues(bs.Namespace, bs.Name).Set(interval.Seconds())
	} else {
		scheduleExpectedInterval.DeleteLabelValues(bs.Namespace, bs.Name)
	}
}

// forgetSchedule drops the series of a deleted schedule.
func forgetSchedule(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "schedule": name}
	for _, g := range []*prometheus.GaugeVec{scheduleNextRun, scheduleExpectedInterval, scheduleLastSuccess, scheduleSuspended, backupVerified} {
		g.DeletePartialMatch(l)
	}
	scheduleReady.forget(namespace, name)
}

// forgetStore drops the series of a deleted store.
func forgetStore(namespace, name string) {
	storeReady.forget(namespace, name)
}

func recordRestoreMetrics(rs *backstopv1alpha1.Restore) {
	target := rs.Spec.TargetRef.Name
	result := string(rs.Status.Phase)
	restoresTotal.WithLabelValues(rs.Namespace, target, result, rs.Status.Reason).Inc()
	if rs.Status.StartTime != nil && rs.Status.CompletionTime != nil {
		restoreDuration.WithLabelValues(rs.Namespace, target, result).Observe(rs.Status.CompletionTime.Sub(rs.Status.StartTime.Time).Seconds())
	}
	if rs.Status.Phase == backstopv1alpha1.RestoreSucceeded && rs.Status.CompletionTime != nil {
		restoreLastSuccess.WithLabelValues(rs.Namespace, target).Set(float64(rs.Status.CompletionTime.Unix()))
	}
}

func recordDrillMetrics(dr *backstopv1alpha1.BackupDrill) {
	result := string(dr.Status.Phase)
	drillsTotal.WithLabelValues(dr.Namespace, result, dr.Status.Reason).Inc()
	if d := dr.Status.RestoreDuration; d != nil {
		drillDuration.WithLabelValues(dr.Namespace, result).Observe(d.Seconds())
	}
}
