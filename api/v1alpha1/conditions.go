package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// GetConditions returns the conditions of the BackupStore.
func (in *BackupStore) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the conditions of the BackupStore.
func (in *BackupStore) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetConditions returns the conditions of the BackupTarget.
func (in *BackupTarget) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the conditions of the BackupTarget.
func (in *BackupTarget) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetConditions returns the conditions of the BackupSchedule.
func (in *BackupSchedule) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the conditions of the BackupSchedule.
func (in *BackupSchedule) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetConditions returns the conditions of the Backup.
func (in *Backup) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the conditions of the Backup.
func (in *Backup) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetConditions returns the conditions of the Restore.
func (in *Restore) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the conditions of the Restore.
func (in *Restore) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetConditions returns the conditions of the BackupDrill.
func (in *BackupDrill) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the conditions of the BackupDrill.
func (in *BackupDrill) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
