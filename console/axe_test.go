package console_test

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// axeSource is axe-core 4.14.1 (npm package axe-core, MPL-2.0; see
// testdata/axe-core/LICENSE), the accessibility checker the browser test
// runs on every page it visits. It lives in testdata so that it is compiled
// into tests only and never served by the console.
//
//go:embed testdata/axe-core/axe.min.js
var axeSource string

// axeViolation is one rule axe found broken, with the elements that break it.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

func (v axeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s", v.ID, v.Impact, v.Help)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n    %v: %s", n.Target, strings.ReplaceAll(n.Summary, "\n", " "))
	}
	return b.String()
}

// axeRun loads axe into the page unless it is there already (a page
// updated in place by htmx keeps it) and checks the whole document with
// axe's default rules: WCAG 2.x A and AA and its best practices (labels,
// contrast, landmarks, headings, ARIA).
const axeRun = `(async () => {
  const r = await axe.run(document, {resultTypes: ["violations"]});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target, failureSummary: n.failureSummary}))}));
})()`

// axe checks the page as it is now. Violations of serious or critical
// impact fail the test; lesser ones are logged.
func (b *tab) axe(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof window.axe === "object"`))
	require.NoError(b.t, err)
	if !loaded {
		// Evaluated through the DevTools protocol, axe is not subject to the
		// console's Content-Security-Policy, which allows only its own
		// scripts.
		_, err := chromedp.Run(ctx, chromedp.Evaluate[any](axeSource+"\n;undefined"))
		require.NoError(b.t, err, "load axe-core")
	}
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](axeRun, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err, "run axe-core on %s", name)
	var serious []string
	for _, v := range vs {
		switch v.Impact {
		case "serious", "critical":
			serious = append(serious, v.String())
		default:
			b.t.Logf("accessibility, %s: %s", name, v)
		}
	}
	if len(serious) > 0 {
		path := b.screenshot("axe-" + name)
		b.t.Fatalf("accessibility violations on %s (screenshot %s):\n  %s", name, path, strings.Join(serious, "\n  "))
	}
	b.checked = append(b.checked, name)
}
