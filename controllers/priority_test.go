package controllers

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// What a wrapped handler enqueues is served after what was queued at the
// default priority, even when it was queued first.
func TestBehind_ServedAfterDefaultPriorityWork(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("test")
	defer q.ShutDown()
	ctx := context.Background()
	followUp := &backstopv1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "follow-up", ResourceVersion: "1"}}
	followUpNew := followUp.DeepCopy()
	followUpNew.ResourceVersion = "2"
	start := &backstopv1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "start"}}

	behind(&handler.EnqueueRequestForObject{}).Update(ctx, event.UpdateEvent{ObjectOld: followUp, ObjectNew: followUpNew}, q)
	(&handler.EnqueueRequestForObject{}).Create(ctx, event.CreateEvent{Object: start}, q)

	first, prio, _ := q.GetWithPriority()
	if want := (reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "start"}}); first != want || prio != 0 {
		t.Fatalf("first served: %v at priority %d, want %v at 0", first, prio, want)
	}
	second, prio, _ := q.GetWithPriority()
	if second.Name != "follow-up" || prio != handler.LowPriority {
		t.Fatalf("second served: %v at priority %d, want follow-up at %d", second, prio, handler.LowPriority)
	}
}
