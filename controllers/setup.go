package controllers

import (
	"context"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Options configure every reconciler.
type Options struct {
	Agent AgentOptions
	// Clock is the time source; tests fix it.
	Clock clock.PassiveClock
	// ScheduleResync bounds how long a schedule sleeps before it reads the
	// clock again, so a wall-clock jump is noticed. Default 5 minutes.
	ScheduleResync time.Duration
	// Concurrency is how many objects of one kind are reconciled at once. Default 2.
	Concurrency int
	// MaxConcurrentDrills is how many drill Jobs run at once. Default 1.
	MaxConcurrentDrills int
}

// SetupAll registers the field indexes and one reconciler per kind.
func SetupAll(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Agent.Image == "" {
		opts.Agent = DefaultAgentOptions()
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	if err := indexSpecRefs(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	recorder := mgr.GetEventRecorder("backstop")
	c, reader := mgr.GetClient(), mgr.GetAPIReader()
	setups := []interface{ SetupWithManager(ctrl.Manager) error }{
		&BackupStoreReconciler{Client: c, Concurrency: opts.Concurrency, Recorder: recorder, Clock: opts.Clock},
		&BackupTargetReconciler{Client: c, Metadata: mgr.GetCache(), Concurrency: opts.Concurrency, Recorder: recorder},
		&BackupScheduleReconciler{Client: c, APIReader: reader, Concurrency: opts.Concurrency, Recorder: recorder, Clock: opts.Clock, Resync: opts.ScheduleResync},
		&BackupReconciler{Client: c, Concurrency: opts.Concurrency, APIReader: reader, Recorder: recorder, Clock: opts.Clock, Agent: opts.Agent},
		&RestoreReconciler{Client: c, Concurrency: opts.Concurrency, APIReader: reader, Recorder: recorder, Clock: opts.Clock, Agent: opts.Agent},
		&BackupDrillReconciler{Client: c, Concurrency: opts.Concurrency, APIReader: reader, Recorder: recorder, Clock: opts.Clock, Agent: opts.Agent, MaxConcurrentDrills: opts.MaxConcurrentDrills},
	}
	for _, s := range setups {
		if err := s.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return nil
}
