// Package controllers holds one reconciler per Backstop kind.
package controllers

// The manager's permissions, in one place. Secrets are read only: the
// operator never writes a credential. Jobs and their Pods are how the agent runs.
// A Backup's namespace is read to tell whether it is being deleted.
//
// +kubebuilder:rbac:groups=backstop.io,resources=backupstores;backuptargets;backupschedules;backups;restores;backupdrills,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=backstop.io,resources=backupstores/status;backuptargets/status;backupschedules/status;backups/status;restores/status;backupdrills/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=backstop.io,resources=backups/finalizers;restores/finalizers;backupdrills/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
