//go:build !purego

package kernels

import (
	"testing"

	"github.com/mocolab/moco/internal/testutil"
)

// TestVEXOnly: the assembly uses VEX and EVEX encodings only.
func TestVEXOnly(t *testing.T) { testutil.VEXOnly(t, "*_amd64.s") }
