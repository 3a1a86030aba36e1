package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeQuickStart runs the README's quick-start walk-through, the shell
// block as it is written, against a freshly started reference server: only
// the printed admin key is pasted in and, since the test server listens on
// a free port rather than 8080, the address is replaced.
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	for _, tool := range []string{"sh", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's walk-through needs %s (Debian package %s)", tool, tool)
		}
	}
	script := readmeBlock(t, "## Quick start", "```sh")

	s := start(t, buildServer(t), t.TempDir())
	admin := s.output(t, keyRE.FindString) // the server prints its admin key on first start

	const placeholder = "ADMIN_KEY=slk_…"
	require.Contains(t, script, placeholder, "the walk-through has a line to paste the key into")
	require.Contains(t, script, "http://localhost:8080")
	script = strings.Replace(script, placeholder, "ADMIN_KEY="+admin, 1)
	script = strings.ReplaceAll(script, "http://localhost:8080", s.url)

	out, err := exec.Command("sh", "-eu", "-c", script).CombinedOutput()
	// The walk-through echoes the new key, as it should for a person; the
	// test log gets it redacted.
	shown := keyRE.ReplaceAllString(string(out), "slk_<redacted>")
	require.NoError(t, err, "output:\n%s", shown)
	lines := strings.SplitN(string(out), "\n", 3)
	require.Len(t, lines, 3, "output:\n%s", shown)
	require.Regexp(t, `^slk_[0-9A-Za-z]+$`, lines[0], "the Finance Sync key is echoed")
	require.Regexp(t, `^rec_[0-9a-z]+$`, lines[1], "the opportunity's id is echoed")
	id := lines[1]
	rest := lines[2]
	require.Contains(t, rest, `"data":[{"id":"`+id+`"`, "the list holds the record")
	require.Contains(t, rest, `"name":"Acme Corp renewal"`)
	require.Contains(t, rest, `"version":2`, "the update answers version 2")
	require.Contains(t, rest, `"stage":"Closed Won"`)
	require.Contains(t, rest, `"closed_at":"`, "the workflow rule set closed_at")

	require.Equal(t, 0, s.stop(t))
	require.NotContains(t, s.stderr.String(), lines[0], "no key in the log")
}

var keyRE = regexp.MustCompile(`slk_[0-9A-Za-z]+`)

// readmeBlock answers the first fenced block opening with fence after the
// heading in the repository's README.
func readmeBlock(tb testing.TB, heading, fence string) string {
	tb.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(tb, err)
	readme := string(b)
	i := strings.Index(readme, "\n"+heading+"\n")
	require.GreaterOrEqual(tb, i, 0, "README has %q", heading)
	readme = readme[i:]
	j := strings.Index(readme, "\n"+fence+"\n")
	require.GreaterOrEqual(tb, j, 0, "README's %q has a %s block", heading, fence)
	block := readme[j+len(fence)+2:]
	k := strings.Index(block, "\n```\n")
	require.GreaterOrEqual(tb, k, 0, "the block ends")
	return block[:k+1]
}
