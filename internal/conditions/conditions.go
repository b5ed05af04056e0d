// Package conditions sets the Ready, Reconciling and Stalled conditions the way
// kstatus reads them: Reconciling and Stalled are abnormal-true and present
// only while true, and every condition carries the object's generation.
package conditions

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backstopv1alpha1 "github.com/backstop-io/backstop/api/v1alpha1"
)

// Object is a Backstop object with conditions.
type Object interface {
	client.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

// Set sets one condition, stamped with the object's generation.
func Set(obj Object, condType string, status metav1.ConditionStatus, reason, message string) {
	conds := obj.GetConditions()
	meta.SetStatusCondition(&conds, metav1.Condition{
		Type:               condType,
		Status:             status,
		Reason:             reason,
		Message:            truncate(message),
		ObservedGeneration: obj.GetGeneration(),
	})
	obj.SetConditions(conds)
}

// Remove deletes a condition.
func Remove(obj Object, condType string) {
	conds := obj.GetConditions()
	meta.RemoveStatusCondition(&conds, condType)
	obj.SetConditions(conds)
}

// MarkReady: the object is usable, or its run finished well.
func MarkReady(obj Object, reason, format string, args ...any) {
	Set(obj, backstopv1alpha1.ConditionReady, metav1.ConditionTrue, reason, fmt.Sprintf(format, args...))
	Remove(obj, backstopv1alpha1.ConditionReconciling)
	Remove(obj, backstopv1alpha1.ConditionStalled)
}

// MarkReconciling: work is in progress, or the object waits on something
// that will change by itself.
func MarkReconciling(obj Object, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	Set(obj, backstopv1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, msg)
	Set(obj, backstopv1alpha1.ConditionReady, metav1.ConditionUnknown, reason, msg)
	Remove(obj, backstopv1alpha1.ConditionStalled)
}

// MarkFailed: not ready, and a retry may help (an unreachable store, say).
func MarkFailed(obj Object, reason, format string, args ...any) {
	Set(obj, backstopv1alpha1.ConditionReady, metav1.ConditionFalse, reason, fmt.Sprintf(format, args...))
	Remove(obj, backstopv1alpha1.ConditionReconciling)
	Remove(obj, backstopv1alpha1.ConditionStalled)
}

// MarkStalled: not ready, and only the user can fix it, or the one-shot run
// has failed for good.
func MarkStalled(obj Object, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	Set(obj, backstopv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	Set(obj, backstopv1alpha1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	Remove(obj, backstopv1alpha1.ConditionReconciling)
}

// Get returns a condition, or nil.
func Get(obj Object, condType string) *metav1.Condition {
	return meta.FindStatusCondition(obj.GetConditions(), condType)
}

// IsReady tells whether Ready is True for the current generation.
func IsReady(obj Object) bool {
	c := Get(obj, backstopv1alpha1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == obj.GetGeneration()
}

// maxMessage keeps messages within the API's 32 KiB limit with room to spare.
const maxMessage = 4096

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage-3] + "..."
}
