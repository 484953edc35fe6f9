package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
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
	// pp: 40 tokens in one call of 2 ms + 40*50us = 4 ms -> at most 10000 tok/s.
	if res.PromptRate > 10000 || res.PromptRate < 2000 {
		t.Errorf("pp rate %g, want a little under 10000", res.PromptRate)
	}
	// tg: 5 calls of 2.05 ms -> at most 487.8 tok/s.
	if res.GenRate > 488 || res.GenRate < 100 {
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
