// Package gitops checks that GitOps tools judge Backstop's objects right:
// kstatus (what Flux's health checks use) and the Argo CD Lua health checks
// in charts/backstop/argocd-health, on real objects of every kind in every
// phase, read back from a real API server.
package gitops
