package controllers

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
	"github.com/backstop-io/backstop/internal/conditions"
)

// readySnapshot copies the Ready condition before a reconcile changes it.
func readySnapshot(obj conditions.Object) *metav1.Condition {
	if c := conditions.Get(obj, backstopv1alpha1.ConditionReady); c != nil {
		return c.DeepCopy()
	}
	return nil
}

// announceTransition emits one event when the Ready condition changed status
// or reason. The event reason is the condition reason; failures are Warnings.
func announceTransition(rec events.EventRecorder, obj conditions.Object, before *metav1.Condition, action string) {
	if rec == nil {
		return
	}
	after := conditions.Get(obj, backstopv1alpha1.ConditionReady)
	if after == nil {
		return
	}
	if before != nil && before.Status == after.Status && before.Reason == after.Reason {
		return
	}
	eventType := corev1.EventTypeNormal
	if after.Status == metav1.ConditionFalse {
		eventType = corev1.EventTypeWarning
	}
	rec.Eventf(obj, nil, eventType, after.Reason, action, "%s", after.Message)
}
