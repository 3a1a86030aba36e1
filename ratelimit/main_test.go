package ratelimit_test

import (
	"os"
	"testing"

	"github.com/smartlite/crmkit/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }
