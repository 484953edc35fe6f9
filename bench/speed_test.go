package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mocolab/moco/kernels"
)

// fakeSession costs a fixed time per call plus per token, so the rates are
// known in advance.
type fakeSession struct {
	perCall, perToken time.Duration
	fed               *[]int
	fail              bool
}

func (f *fakeSession) Forward(tokens []int) ([]float32, error) {
	if f.fail {
		return nil, errors.New("boom")
	}
	*f.fed = append(*f.fed, len(tokens))
	time.Sleep(f.perCall + time.Duration(len(tokens))*f.perToken)
	return make([]float32, 4), nil
}

func TestMeasureSpeed(t *testing.T) {
	var fed []int
	newSession := func() (Forwarder, error) {
		return &fakeSession{perCall: 2 * time.Millisecond, perToken: 50 * time.Microsecond, fed: &fed}, nil
	}
	res, err := MeasureSpeed(newSession, 1e9, SpeedOptions{PromptTokens: 40, GenTokens: 5, Repeats: 3, Bandwidth: 10})
	if err != nil {
		t.Fatal(err)
	}
	// pp: 40 tokens in one call of 2 ms + 40*50us = 4 ms -> at most 10000
	// tok/s. Sleeps only ever run long, so only the upper bound is exact; a
	// loaded machine may make the rate arbitrarily lower.
	if res.PromptRate > 10000 || res.PromptRate <= 0 {
		t.Errorf("pp rate %g, want a little under 10000", res.PromptRate)
	}
	// tg: 5 calls of 2.05 ms -> at most 487.8 tok/s.
	if res.GenRate > 488 || res.GenRate <= 0 {
		t.Errorf("tg rate %g, want a little under 488", res.GenRate)
	}
	// warm-up batch of 8, then per repeat one batch of 40 and five single tokens
	want := []int{8}
	for i := 0; i < 3; i++ {
		want = append(want, 40, 1, 1, 1, 1, 1)
	}
	if len(fed) != len(want) {
		t.Fatalf("fed %v, want %v", fed, want)
	}
	for i := range want {
		if fed[i] != want[i] {
			t.Fatalf("fed %v, want %v", fed, want)
		}
	}
	if res.GenLimit != 10 || res.BandwidthSource != "given" {
		t.Errorf("limit %g (%s), want 10 tok/s from the given 10 GB/s over 1 GB", res.GenLimit, res.BandwidthSource)
	}
	if got := res.GenShare; got != res.GenRate/10 {
		t.Errorf("share %g, want rate/limit", got)
	}
	var tab, js bytes.Buffer
	res.WriteTable(&tab)
	if !strings.Contains(tab.String(), "pp40") || !strings.Contains(tab.String(), "tg5") {
		t.Errorf("table lacks pp40/tg5:\n%s", tab.String())
	}
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back SpeedResult
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.GenRate != res.GenRate {
		t.Errorf("JSON round trip: %v, %+v", err, back)
	}
	// The kernel paths and why they were chosen travel in the JSON.
	if len(back.Paths) == 0 || len(back.Paths) != len(kernels.Choices()) || back.Paths[0].Reason == "" {
		t.Errorf("JSON paths %+v, want kernels.Choices()", back.Paths)
	}
	if !strings.Contains(tab.String(), "path "+back.Paths[0].Kernel) {
		t.Errorf("table lacks the kernel paths:\n%s", tab.String())
	}
}

// TestPairedShare checks that each generation repeat is set against the
// probe run right after it: fake probes of 10, 20 and 40 GB/s make the
// shares of equal rates halve from repeat to repeat.
func TestPairedShare(t *testing.T) {
	var fed []int
	newSession := func() (Forwarder, error) {
		return &fakeSession{perCall: time.Millisecond, fed: &fed}, nil
	}
	defer func(f func(*bandwidthProbe, int, time.Duration) Bandwidth) { measureProbe = f }(measureProbe)
	var probes []float64
	next := []float64{10, 20, 40}
	measureProbe = func(p *bandwidthProbe, runs int, _ time.Duration) Bandwidth {
		if runs != pairedRuns {
			return Bandwidth{Best: 50, Median: 45, Runs: runs} // the final limit
		}
		bw := next[len(probes)]
		probes = append(probes, bw)
		return Bandwidth{Best: bw, Median: bw, Runs: runs}
	}
	res, err := MeasureSpeed(newSession, 1e9, SpeedOptions{PromptTokens: 2, GenTokens: 2, Repeats: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.PairedShares) != 3 || len(probes) != 3 {
		t.Fatalf("paired shares %v after probes %v, want 3 of each", res.PairedShares, probes)
	}
	for i, sh := range res.PairedShares {
		// rate tokens/s * 1 GB per token / (probe GB/s)
		if want := res.GenRates[i] / probes[i]; math.Abs(sh-want) > 1e-9*want {
			t.Errorf("repeat %d: share %g, want %g (rate %g over %g GB/s)", i, sh, want, res.GenRates[i], probes[i])
		}
	}
	if res.PairedShare != median(res.PairedShares) || res.Bandwidth != 50 || res.BandwidthSource != "measured" {
		t.Errorf("paired %g of %v, bandwidth %g (%s)", res.PairedShare, res.PairedShares, res.Bandwidth, res.BandwidthSource)
	}
	var tab bytes.Buffer
	res.WriteTable(&tab)
	if !strings.Contains(tab.String(), "right after each tg repeat") {
		t.Errorf("table lacks the paired share:\n%s", tab.String())
	}
	// A given bandwidth runs no probe.
	res, err = MeasureSpeed(newSession, 1e9, SpeedOptions{PromptTokens: 2, GenTokens: 2, Repeats: 2, Bandwidth: 10})
	if err != nil || len(res.PairedShares) != 0 || len(probes) != 3 {
		t.Errorf("given bandwidth: %v, paired %v, probes %v", err, res.PairedShares, probes)
	}
}

func TestMeasureSpeedError(t *testing.T) {
	newSession := func() (Forwarder, error) { return &fakeSession{fail: true}, nil }
	if _, err := MeasureSpeed(newSession, 1, SpeedOptions{Bandwidth: 1}); err == nil {
		t.Error("a failing Forward gave no error")
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %g, want %g", tc.in, got, tc.want)
		}
	}
}

func TestShapeConfig(t *testing.T) {
	for _, name := range ShapeNames() {
		b, err := ShapeConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Hidden int `json:"hidden_size"`
		}
		if err := json.Unmarshal(b, &c); err != nil || c.Hidden == 0 {
			t.Errorf("%s: %v, hidden %d", name, err, c.Hidden)
		}
	}
	if _, err := ShapeConfig("gpt-5"); err == nil {
		t.Error("unknown shape gave no error")
	}
}

// TestSpeedCaveat: a share above 100%, or weights small enough for the
// caches, is never printed without a caveat; a plausible one has none.
func TestSpeedCaveat(t *testing.T) {
	for _, tc := range []struct {
		name        string
		weights     int64
		rate, bw    float64
		wantCaveat  string
		wantStarred bool
	}{
		{"cache-resident above 100%", 1e6, 50000, 10, "read from the CPU caches", true},         // limit 10000 tok/s
		{"large model above 100%", 1e9, 20, 10, "too low", true},                                // limit 10 tok/s
		{"cache-resident below 100%", 1e6, 5000, 10, "may be served from the CPU caches", true}, // share 50%
		{"large model below 100%", 1e9, 5, 10, "", false},
	} {
		r := &SpeedResult{WeightBytes: tc.weights, GenRate: tc.rate, Bandwidth: tc.bw, BandwidthSource: "measured", GenTokens: 1, PromptTokens: 1}
		r.GenLimit = r.Bandwidth * 1e9 / float64(r.WeightBytes)
		r.GenShare = r.GenRate / r.GenLimit
		r.Caveat = r.caveat()
		if tc.wantCaveat == "" && r.Caveat != "" || !strings.Contains(r.Caveat, tc.wantCaveat) {
			t.Errorf("%s: caveat %q, want %q", tc.name, r.Caveat, tc.wantCaveat)
		}
		var tab bytes.Buffer
		r.WriteTable(&tab)
		if got := strings.Contains(tab.String(), "%*"); got != tc.wantStarred || (tc.wantStarred && !strings.Contains(tab.String(), "* "+r.Caveat)) {
			t.Errorf("%s: table\n%s", tc.name, tab.String())
		}
	}
}

// TestSpeedTablePaths checks that the table marks the paths the kernels'
// calibration chose (kernels.Calibrate), fresh or from its cache.
func TestSpeedTablePaths(t *testing.T) {
	r := &SpeedResult{Paths: []kernels.Choice{
		{Kernel: "a", Path: "pa", Reason: "cpu family rule: AVX-512"},
		{Kernel: "b", Path: "pb", Reason: "calibrated (1 ns vs 2 ns for x)"},
		{Kernel: "c", Path: "pc", Reason: "cached calibration from /c/k.json (1 ns vs 2 ns for x)"},
	}}
	var tab bytes.Buffer
	r.WriteTable(&tab)
	for _, want := range []string{"path a:" + strings.Repeat(" ", 21) + "pa\n", "path b:" + strings.Repeat(" ", 21) + "pb  [calibrated]\n",
		"path c:" + strings.Repeat(" ", 21) + "pc  [calibrated, cached]\n"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tab.String())
		}
	}
}
