package records

import (
	"context"
	"errors"
)

// Plan reservations: how a batch moves its workspaces' record counts so the
// plan cap holds exactly, with as few statements as the cap allows.

// reservation is the plan count a batch moved ahead for one workspace: the
// places reserved for its creates and not (yet) used, and the records its
// deletes removed.
type reservation struct {
	unused  int64
	deleted int64
}

// reserveAhead reserves, per workspace, the places all the batch's creates
// need with one ReserveRecords, instead of one per row. Where that would
// pass the plan's cap, the workspace is left out, and its rows reserve one
// by one in row order, so exactly the rows past the cap fail. So is a
// workspace with a single create (every single create): one reservation
// either way, and the row's own is the same statement as its record on a
// RowTx.
func (t *txRun) reserveAhead(ctx context.Context, tx Tx) (map[string]*reservation, error) {
	need := make(map[string]int64, 1)
	caps := make(map[string]int64, 1)
	var order []string
	for _, r := range t.rows {
		if r.act == actNoop || r.err != nil || r.retry {
			continue
		}
		ws := r.rec.Workspace
		if _, seen := need[ws]; !seen {
			order = append(order, ws)
			need[ws] = 0
		}
		if r.act == actCreate {
			need[ws]++
			caps[ws] = r.max
		}
	}
	ahead := make(map[string]*reservation, len(order))
	for _, ws := range order {
		n := need[ws]
		if n == 1 {
			continue
		}
		if n > 0 {
			err := tx.ReserveRecords(ctx, ws, n, caps[ws])
			if errors.Is(err, ErrPlanLimit) {
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		ahead[ws] = &reservation{unused: n}
	}
	return ahead, nil
}

// settle gives back the places reserved ahead that failed rows did not use,
// and counts the deletes, one ReserveRecords per workspace.
func (t *txRun) settle(ctx context.Context, tx Tx, ahead map[string]*reservation) error {
	for ws, a := range ahead {
		if d := -(a.unused + a.deleted); d != 0 {
			if err := tx.ReserveRecords(ctx, ws, d, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

func (bs *batchState) planMax(ctx context.Context, p *Pipeline, ws string) (int64, error) {
	if m, ok := bs.plans[ws]; ok {
		return m, nil
	}
	m, err := p.planMax(ctx, ws)
	if err != nil {
		return 0, err
	}
	if bs.plans == nil {
		bs.plans = make(map[string]int64, 1)
	}
	bs.plans[ws] = m
	return m, nil
}
