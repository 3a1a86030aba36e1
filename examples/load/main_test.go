package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGetScenario(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-scenario", "get", "-duration", "3s", "-concurrency", "2"}, &out, io.Discard))
	var res map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &res))
	for _, k := range []string{"requests", "rps", "p50_ms", "p99_ms", "errors", "db"} {
		require.Contains(t, res, k)
	}
	require.Equal(t, "sqlite", res["db"])
	require.EqualValues(t, 0, res["errors"], "first error: %v", res["first_error"])
	require.Positive(t, res["requests"])
}

func TestRefusesNonLoopbackTargets(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"http://10.1.2.3:8080", "http://192.168.0.1", "http://[2001:db8::1]/", "ftp://127.0.0.1", "http://"} {
		require.Error(t, requireLoopback(ctx, u), u)
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:8080"} {
		require.NoError(t, requireLoopback(ctx, u), u)
	}
	err := run(ctx, []string{"-url", "http://10.1.2.3:8080", "-admin-key", "x", "-duration", "1s"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "not a loopback address")
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-scenario", "nope"},
		{"-duration", "0s"},
		{"-duration", "11m"},
		{"-concurrency", "0"},
	} {
		require.Error(t, run(context.Background(), args, io.Discard, io.Discard), "%v", args)
	}
}
