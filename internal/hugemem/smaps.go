package hugemem

import (
	"strconv"
	"strings"
)

// parseHugeBytes returns the AnonHugePages figure of a smaps_rollup text
// in bytes, 0 when it is absent or malformed.
func parseHugeBytes(smaps string) int64 {
	for _, line := range strings.Split(smaps, "\n") {
		rest, ok := strings.CutPrefix(line, "AnonHugePages:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > 1<<53 {
			return 0
		}
		return kb << 10
	}
	return 0
}
