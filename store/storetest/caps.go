package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/records"
)

// testAPIKeyCap checks CreateAPIKeyWithin: exactly the cap's room is
// filled by concurrent creates, and revoked, rotated and expired keys leave
// room.
func testAPIKeyCap(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "starter"), Workspace(t, st, "starter")
	now := time.Now().UTC()
	createKey(t, st, other.ID, now) // another workspace's key counts for nothing here

	const max, tries = 5, 16
	var wg sync.WaitGroup
	errs := make([]error, tries)
	for i := range tries {
		wg.Go(func() {
			k, hash := newKey(t, ws.ID, now)
			errs[i] = st.CreateAPIKeyWithin(ctx, k, hash, max)
		})
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		if err == nil {
			created++
			continue
		}
		require.ErrorIs(t, err, records.ErrPlanLimit)
	}
	require.Equal(t, max, created, "concurrent creates fill the cap exactly")
	keys, err := st.APIKeys(ctx, ws.ID, "", 100)
	require.NoError(t, err)
	require.Len(t, keys, max)

	k, hash := newKey(t, ws.ID, now)
	require.ErrorIs(t, st.CreateAPIKeyWithin(ctx, k, hash, max), records.ErrPlanLimit)
	require.NoError(t, st.CreateAPIKeyWithin(ctx, k, hash, 0), "0 is no cap")

	t.Run("revoked, rotated and expired keys leave room", func(t *testing.T) {
		_, err := st.RevokeAPIKey(ctx, ws.ID, keys[0].ID, now)
		require.NoError(t, err)
		next, nextHash := newKey(t, ws.ID, now)
		require.NoError(t, st.RotateAPIKey(ctx, ws.ID, keys[1].ID, now.Add(time.Hour), next, nextHash))
		// Active now: keys[2:] (3), next, and the uncapped one: 5 of 7.
		k, hash := newKey(t, ws.ID, now)
		require.NoError(t, st.CreateAPIKeyWithin(ctx, k, hash, 7))
		k, hash = newKey(t, ws.ID, now)
		require.ErrorIs(t, st.CreateAPIKeyWithin(ctx, k, hash, 6), records.ErrPlanLimit)

		past := now.Add(-time.Minute)
		old, oldHash := newKey(t, ws.ID, now.Add(-time.Hour))
		old.ExpiresAt = &past
		require.NoError(t, st.CreateAPIKey(ctx, old, oldHash))
		k, hash = newKey(t, ws.ID, now)
		require.NoError(t, st.CreateAPIKeyWithin(ctx, k, hash, 7), "an expired key does not count")
	})
}

// testWebhookEndpointCap checks CreateEndpointWithin under concurrent
// creates.
func testWebhookEndpointCap(t *testing.T, st Store) {
	ctx := context.Background()
	ws, other := Workspace(t, st, "starter"), Workspace(t, st, "starter")
	createEndpoint(t, st, other.ID)

	const max, tries = 4, 16
	var wg sync.WaitGroup
	errs := make([]error, tries)
	for i := range tries {
		wg.Go(func() { errs[i] = st.CreateEndpointWithin(ctx, newEndpoint(ws.ID), max) })
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		if err == nil {
			created++
			continue
		}
		require.ErrorIs(t, err, records.ErrPlanLimit)
	}
	require.Equal(t, max, created, "concurrent creates fill the cap exactly")
	eps, err := st.ListEndpoints(ctx, ws.ID, "", 100)
	require.NoError(t, err)
	require.Len(t, eps, max)

	require.NoError(t, st.DeleteEndpoint(ctx, ws.ID, eps[0].ID))
	require.NoError(t, st.CreateEndpointWithin(ctx, newEndpoint(ws.ID), max), "a deleted endpoint leaves room")
	require.ErrorIs(t, st.CreateEndpointWithin(ctx, newEndpoint(ws.ID), max), records.ErrPlanLimit)
}
