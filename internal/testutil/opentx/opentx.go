// Package opentx keeps a transaction open in a database client's session,
// as an application's is while it works: the tests of what a backup or a
// restore does when another session holds the tables use it.
package opentx

import (
	"bufio"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// Hold starts client (psql or mariadb, reading statements on stdin), sends
// BEGIN and then statements, and returns once the session prints the line
// "held": statements must end with SELECT 'held'. release commits and ends
// the session; the test's cleanup calls it too.
func Hold(tb testing.TB, client *exec.Cmd, statements string) (release func()) {
	tb.Helper()
	stdin, err := client.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := client.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := client.Start(); err != nil {
		tb.Fatal(err)
	}
	fmt.Fprintf(stdin, "BEGIN; %s\n", statements)
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			_ = client.Process.Kill()
			_ = client.Wait()
			tb.Fatalf("holding a transaction open (%s): %v", statements, err)
		}
		if strings.TrimSpace(line) == "held" {
			break
		}
	}
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		fmt.Fprintln(stdin, "COMMIT;")
		stdin.Close()
		_ = client.Wait()
	}
	tb.Cleanup(release)
	return release
}
