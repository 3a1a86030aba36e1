package integration

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMinLevelKeepsWarningsOnly(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(minLevel{Handler: slog.NewTextHandler(&buf, nil), min: slog.LevelWarn}).With("component", "river")
	l.Info("producer job counts")
	require.False(t, l.Enabled(context.Background(), slog.LevelInfo))
	l.Warn("queue stalled")
	require.NotContains(t, buf.String(), "producer job counts")
	require.Contains(t, buf.String(), "queue stalled")
	require.Contains(t, buf.String(), "component=river")
}
