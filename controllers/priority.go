package controllers

import (
	"context"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// behind wraps an event handler so that what it enqueues waits behind the
// work already queued at the default priority. Work that starts something
// (a due time, a new Backup's Job) is what users wait for; following up on
// what runs (a Job's progress, a Backup's phase seen by its schedule) can
// come a moment later. When many schedules fire at once, this lets every
// Job start before the first ones are recorded as done.
func behind(h handler.EventHandler) handler.EventHandler {
	return lowPriorityHandler{h}
}

type lowPriorityHandler struct{ handler.EventHandler }

func (l lowPriorityHandler) Create(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	l.EventHandler.Create(ctx, e, lowPriorityQueue{q})
}

func (l lowPriorityHandler) Update(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	l.EventHandler.Update(ctx, e, lowPriorityQueue{q})
}

func (l lowPriorityHandler) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	l.EventHandler.Delete(ctx, e, lowPriorityQueue{q})
}

func (l lowPriorityHandler) Generic(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	l.EventHandler.Generic(ctx, e, lowPriorityQueue{q})
}

// lowPriorityQueue adds at handler.LowPriority when the queue is a priority
// queue (controller-runtime's default), and as given otherwise. It does not
// itself implement PriorityQueue, so that the wrapped handler calls Add.
type lowPriorityQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
}

func (q lowPriorityQueue) Add(item reconcile.Request) {
	if pq, ok := q.TypedRateLimitingInterface.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		low := handler.LowPriority
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: &low}, item)
		return
	}
	q.TypedRateLimitingInterface.Add(item)
}
