// Package humanize formats sizes the way people read them.
package humanize

import "fmt"

// Bytes formats n with a binary unit in the notation of Kubernetes
// quantities, as kubectl columns show them: 512, 3.6Ki, 1.2Gi. It keeps one
// decimal and drops it when it is zero (4Ki). Exact byte counts belong in
// status fields; this is for columns, messages and logs.
func Bytes(n int64) string {
	const unit = 1024
	if n < 0 {
		return "-" + Bytes(-n)
	}
	if n < unit {
		return fmt.Sprintf("%d", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	s := fmt.Sprintf("%.1f", float64(n)/float64(div))
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s + string("KMGTPE"[exp]) + "i"
}
