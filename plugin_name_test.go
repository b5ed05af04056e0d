package main

import "testing"

func TestIsPlugin(t *testing.T) {
	for arg0, want := range map[string]bool{
		"kubectl-backstop":                      true,
		"/usr/local/bin/kubectl-backstop":       true,
		"/opt/krew/bin/kubectl-backstop":        true,
		"backstop":                              false,
		"/usr/local/bin/backstop":               false,
		"/usr/local/bin/kubectl-backstop-agent": false,
	} {
		if got := isPlugin(arg0); got != want {
			t.Errorf("isPlugin(%q) = %v, want %v", arg0, got, want)
		}
	}
}
