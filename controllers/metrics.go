package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
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
)

func init() {
	metrics.Registry.MustRegister(backupsTotal, backupLastSuccess, backupDuration, backupStoredBytes, backupsUnchanged,
		restoresTotal, restoreLastSuccess, restoreDuration, scheduleNextRun)
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
