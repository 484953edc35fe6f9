package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/mocolab/moco/internal/testutil"
)

// FuzzParseDataset is in dataset_test.go.

// TestParseDatasetHostile: deep nesting and a huge number of tiny items
// end in bounded time and memory.
func TestParseDatasetHostile(t *testing.T) {
	deep := `{"task_type": "exact_match", "dev": [{"input": "q", "output": "a", "x": ` + strings.Repeat("[", 200000) + strings.Repeat("]", 200000) + `}], "test": []}`
	err := testutil.Bounded(t, 128<<20, 10*time.Second, func() error { _, err := ParseDataset([]byte(deep)); return err })
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("deep: err = %.400v", err)
	}
	many := `{"task_type": "exact_match", "dev": [` + strings.Repeat(`{"input":"q","output":"a"},`, 20000) + `{"input":"q","output":"a"}], "test": []}`
	if err := testutil.Bounded(t, 512<<20, 20*time.Second, func() error { _, err := ParseDataset([]byte(many)); return err }); err != nil {
		t.Fatal(err)
	}
}
