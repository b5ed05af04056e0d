// Package scale holds the operator's scale benchmark: many BackupSchedules
// due in the same minute, against a real control plane, with the operator
// running as its own process. It runs only with BACKSTOP_BENCH=1
// (`make bench`); see docs/benchmarks.md.
package scale
