package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

var getScenario = scenario{
	description: "authenticated GETs of one record by a READ+WRITE key",
	run:         runGet,
}

// runGet creates a READ+WRITE key and an opportunity with it, then fetches
// that opportunity over and over.
func runGet(ctx context.Context, t *target, o options) (map[string]any, error) {
	key, err := t.newKey(ctx, "Load GET", "READ", "WRITE")
	if err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	var rec struct {
		ID string `json:"id"`
	}
	if _, err := t.call(ctx, "POST", "/api/v1/records/opportunity", key,
		map[string]any{"fields": map[string]any{"name": "Load test deal", "amount": 1000, "stage": "Prospecting"}}, &rec); err != nil {
		return nil, fmt.Errorf("create record: %w", err)
	}
	url := t.url + "/api/v1/records/opportunity/" + rec.ID
	auth := "Bearer " + key
	return hammer(ctx, o, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", auth)
		resp, err := t.client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET record: status %d", resp.StatusCode)
		}
		return nil
	}), nil
}
