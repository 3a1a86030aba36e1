package records_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/records"
)

func TestConditions(t *testing.T) {
	won := &records.RuleContext{
		Fields:  records.Fields{"stage": "Closed Won", "probability": 100.0},
		Changes: map[string]records.Change{"stage": {From: "Negotiation", To: "Closed Won"}},
	}
	edited := &records.RuleContext{
		Fields:  records.Fields{"stage": "Closed Won", "probability": 100.0, "amount": 5.0},
		Changes: map[string]records.Change{"amount": {From: nil, To: 5.0}},
	}
	tests := []struct {
		name string
		cond func(*records.RuleContext) bool
		won  bool
		edit bool
	}{
		{"changed to: an edge", records.FieldChangedTo("stage", "Closed Won"), true, false},
		{"changed to another value", records.FieldChangedTo("stage", "Closed Lost"), false, false},
		{"changed", records.FieldChanged("amount"), false, true},
		{"equals: a level", records.FieldEquals("stage", "Closed Won"), true, true},
		{"equals with an int literal", records.FieldEquals("probability", 100), true, true},
		{"equals another value", records.FieldEquals("stage", "Proposal"), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.won, tc.cond(won))
			require.Equal(t, tc.edit, tc.cond(edited))
		})
	}
}
