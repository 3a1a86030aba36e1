package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// openPostgres opens a pool of pgx connections through database/sql, each
// set up by textArrayParams.
func openPostgres(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	return stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(textArrayParams)), nil
}

// textArrayOIDs are the array types River's database/sql driver binds.
var textArrayOIDs = []uint32{
	pgtype.BoolArrayOID, pgtype.ByteaArrayOID, pgtype.Float8ArrayOID,
	pgtype.Int2ArrayOID, pgtype.Int4ArrayOID, pgtype.Int8ArrayOID,
	pgtype.JSONArrayOID, pgtype.JSONBArrayOID, pgtype.TextArrayOID,
	pgtype.TimestamptzArrayOID, pgtype.VarcharArrayOID,
}

// textArrayParams makes the connection send array parameters in text
// format. River's database/sql driver binds arrays as lib/pq values, whose
// driver.Value is the array's text form. pgx prefers binary for arrays, so it
// failed to encode that string, parsed it back into Go values (JSON elements
// through encoding/json) and encoded those: for one job insert, twelve
// arrays and about 100 µs of CPU. In text format the string is sent as it
// is. Results do not change: the database/sql adapter reads arrays as text
// already.
func textArrayParams(_ context.Context, c *pgx.Conn) error {
	m := c.TypeMap()
	for _, oid := range textArrayOIDs {
		if t, ok := m.TypeForOID(oid); ok {
			m.RegisterType(&pgtype.Type{Name: t.Name, OID: t.OID, Codec: textPreferred{t.Codec}})
		}
	}
	return nil
}

// textPreferred is a codec that prefers the text format; everything else is
// the wrapped codec's.
type textPreferred struct{ pgtype.Codec }

func (textPreferred) PreferredFormat() int16 { return pgtype.TextFormatCode }
