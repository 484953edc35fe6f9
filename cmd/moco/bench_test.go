package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchSpeedJSON(t *testing.T) {
	model := synthTiny(t)
	var out, errb bytes.Buffer
	args := []string{"bench", "speed", "--model", model, "--prompt-tokens", "6", "--gen-tokens", "3",
		"--repeats", "1", "--bandwidth", "10", "--threads", "1", "--json"}
	if code := runMain(args, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res struct {
		Prompt    int     `json:"prompt_tokens"`
		Gen       int     `json:"gen_tokens"`
		Bytes     int64   `json:"weight_bytes_per_token"`
		Bandwidth float64 `json:"bandwidth_gb_s"`
		Limit     float64 `json:"tg_limit_tokens_per_s"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	// By hand for tinyQwen in bf16: lm_head 300*64*2 + one embedding row 64*2
	// + final norm 64*4 + 2 layers * (q 8192 + k 4096 + v 4096 + o 8192 +
	// gate, up, down 3*12288 + two norms 512 + q/k/v biases 512).
	const want = 38400 + 128 + 256 + 2*(8192+4096+4096+8192+3*12288+512+512)
	if res.Bytes != want {
		t.Errorf("weight bytes %d, want %d", res.Bytes, want)
	}
	if res.Prompt != 6 || res.Gen != 3 || res.Bandwidth != 10 {
		t.Errorf("echoed options: %+v", res)
	}
	if res.Limit != 10e9/float64(want) {
		t.Errorf("limit %g, want %g", res.Limit, 10e9/float64(want))
	}
	if !strings.Contains(out.String(), `"pp_tokens_per_s"`) || !strings.Contains(out.String(), `"tg_tokens_per_s"`) {
		t.Errorf("JSON lacks the rates: %s", out.String())
	}

	out.Reset()
	args = []string{"bench", "speed", "--model", model, "--prompt-tokens", "4", "--gen-tokens", "2",
		"--repeats", "1", "--bandwidth", "10", "--quant", "q8_0"}
	if code := runMain(args, nil, &out, &errb); code != 0 {
		t.Fatalf("q8_0: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "tg2") || !strings.Contains(out.String(), "quant q8_0") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestBenchSpeedErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "missing benchmark"},
		{[]string{"bench", "sprint"}, "unknown benchmark"},
		{[]string{"bench", "speed"}, "--model is required"},
		{[]string{"bench", "speed", "--model", "x", "--quant", "q4_k"}, "q8_0"},
		{[]string{"bench", "speed", "--model", "x", "--repeats", "0"}, "--repeats 0: want an integer in [1, 1000]"},
		{[]string{"bench", "speed", "--model", filepath.Join(t.TempDir(), "none")}, "no such model folder"},
	} {
		var out, errb bytes.Buffer
		if code := runMain(tc.args, nil, &out, &errb); code == 0 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want an error mentioning %q", tc.args, code, errb.String(), tc.want)
		}
	}
}
