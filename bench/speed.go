package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/mocolab/moco/internal/hugemem"
	"github.com/mocolab/moco/kernels"
)

// This file measures inference speed the way llama-bench does: prompt
// processing (one batch of PromptTokens tokens from an empty cache) and
// generation (GenTokens single-token steps from an empty cache), each
// repeated and reported as the median tokens per second, next to the limit
// that memory bandwidth puts on generation (every step reads every weight).

// Forwarder is the part of an engine session the benchmark drives: it feeds
// tokens at the next positions and returns the last token's logits.
type Forwarder interface {
	Forward(tokens []int) ([]float32, error)
}

// SpeedOptions configures MeasureSpeed.
type SpeedOptions struct {
	PromptTokens int     // prompt batch size (llama-bench -p; default 128)
	GenTokens    int     // generated tokens (llama-bench -n; default 64)
	Repeats      int     // measurements per figure; the median is reported (default 3)
	Bandwidth    float64 // memory bandwidth in GB/s; 0 measures it in-process
	Vocab        int     // token ids are drawn from [0, Vocab) (default 256)
	Seed         uint64  // seed of the token ids
}

// SpeedResult is what MeasureSpeed found. Rates are tokens per second.
type SpeedResult struct {
	Model   string `json:"model,omitempty"`
	Threads int    `json:"threads"`
	Quant   string `json:"quant,omitempty"`
	Kernels string `json:"kernels"`
	CPU     string `json:"cpu"`                        // vendor, family, model (kernels.CPU)
	BF16Act string `json:"bf16_activations,omitempty"` // kernels of the bf16-activation mode, when on
	// Paths is the path each kernel family ran on and why it was chosen
	// for this CPU (kernels.Choices).
	Paths           []kernels.Choice `json:"paths"`
	PromptTokens    int              `json:"prompt_tokens"`
	GenTokens       int              `json:"gen_tokens"`
	Repeats         int              `json:"repeats"`
	PromptRate      float64          `json:"pp_tokens_per_s"`
	GenRate         float64          `json:"tg_tokens_per_s"`
	PromptRates     []float64        `json:"pp_samples"`
	GenRates        []float64        `json:"tg_samples"`
	WeightBytes     int64            `json:"weight_bytes_per_token"`
	Bandwidth       float64          `json:"bandwidth_gb_s"`
	BandwidthSource string           `json:"bandwidth_source"` // "measured" or "given"
	// Weights says where the weights live: "resident" (read into private
	// memory) or "mapped" (the file's memory map); HugePageMiB is how much
	// of the process's memory the kernel backs with huge pages.
	Weights     string  `json:"weights,omitempty"`
	HugePageMiB int64   `json:"huge_page_mib"`
	GenLimit    float64 `json:"tg_limit_tokens_per_s"`
	GenShare    float64 `json:"tg_share_of_limit"`
	// BandwidthMedian and BandwidthRuns describe a measured bandwidth: the
	// limit uses the best run (the least disturbed), the median shows the
	// spread.
	BandwidthMedian float64 `json:"bandwidth_median_gb_s,omitempty"`
	BandwidthRuns   int     `json:"bandwidth_runs,omitempty"`
	// PairedShares is, for each generation repeat when the bandwidth is
	// measured, its rate over the limit that a short probe right after it
	// gave (the best of pairedRuns runs); PairedShare is their median. On
	// a host whose bandwidth moves between runs this tracks the share
	// better than GenShare, whose limit is the best probe run of all.
	PairedShares []float64 `json:"tg_share_paired_samples,omitempty"`
	PairedShare  float64   `json:"tg_share_paired,omitempty"`
	// Caveat explains a share that cannot be taken at face value (above
	// 100%, or weights small enough to be served from CPU caches); empty
	// when the share is plausible.
	Caveat string `json:"caveat,omitempty"`
}

// cacheResident is the weight size below which generation may read its
// weights from the CPU's caches rather than memory (large server L3
// caches reach hundreds of MB; the limit assumes memory).
const cacheResident = 256 << 20

// MeasureSpeed runs the benchmark. newSession returns a fresh session (empty
// cache) each time it is called; weightBytes is the weight bytes one
// generation step reads (engine's Model.WeightBytes). The kernels' thread
// count must already be set.
func MeasureSpeed(newSession func() (Forwarder, error), weightBytes int64, opts SpeedOptions) (*SpeedResult, error) {
	if opts.PromptTokens <= 0 {
		opts.PromptTokens = 128
	}
	if opts.GenTokens <= 0 {
		opts.GenTokens = 64
	}
	if opts.Repeats <= 0 {
		opts.Repeats = 3
	}
	if opts.Vocab <= 0 {
		opts.Vocab = 256
	}
	r := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	tokens := make([]int, max(opts.PromptTokens, opts.GenTokens))
	for i := range tokens {
		tokens[i] = r.IntN(opts.Vocab)
	}
	res := &SpeedResult{
		Threads: kernels.Threads(), Kernels: kernels.Impl(), CPU: kernels.CPU().String(),
		PromptTokens: opts.PromptTokens, GenTokens: opts.GenTokens, Repeats: opts.Repeats,
		WeightBytes: weightBytes,
	}

	// Warm up: fault in the weights and let the pool's workers start.
	if _, err := timePrompt(newSession, tokens[:min(8, len(tokens))]); err != nil {
		return nil, err
	}
	// With the bandwidth measured here, a short probe follows each
	// generation repeat, so that each repeat's rate is also compared with
	// what the memory gave at that moment (a shared host's bandwidth moves
	// by a third between runs).
	var probe *bandwidthProbe
	if opts.Bandwidth <= 0 && weightBytes > 0 {
		probe = newBandwidthProbe()
		defer probe.close()
	}
	for i := 0; i < opts.Repeats; i++ {
		d, err := timePrompt(newSession, tokens[:opts.PromptTokens])
		if err != nil {
			return nil, err
		}
		res.PromptRates = append(res.PromptRates, float64(opts.PromptTokens)/d.Seconds())
		d, err = timeGen(newSession, tokens[:opts.GenTokens])
		if err != nil {
			return nil, err
		}
		rate := float64(opts.GenTokens) / d.Seconds()
		res.GenRates = append(res.GenRates, rate)
		if probe != nil {
			bw := measureProbe(probe, pairedRuns, 0)
			res.PairedShares = append(res.PairedShares, rate*float64(weightBytes)/(bw.Best*1e9))
		}
	}
	res.PairedShare = median(res.PairedShares)
	if kernels.BF16Activations() {
		res.BF16Act = kernels.BF16ActKernels()
	}
	res.Paths = kernels.Choices()
	res.HugePageMiB = hugemem.ProcessHugeBytes() >> 20
	res.PromptRate = median(res.PromptRates)
	res.GenRate = median(res.GenRates)

	res.Bandwidth, res.BandwidthSource = opts.Bandwidth, "given"
	if opts.Bandwidth <= 0 {
		var bw Bandwidth
		if probe != nil {
			bw = measureProbe(probe, bandwidthRuns, bandwidthTime)
		} else {
			bw = MeasureBandwidthRuns(bandwidthRuns, bandwidthTime)
		}
		res.Bandwidth, res.BandwidthMedian, res.BandwidthRuns, res.BandwidthSource = bw.Best, bw.Median, bw.Runs, "measured"
	}
	if weightBytes > 0 && res.Bandwidth > 0 {
		res.GenLimit = res.Bandwidth * 1e9 / float64(weightBytes)
		res.GenShare = res.GenRate / res.GenLimit
	}
	res.Caveat = res.caveat()
	return res, nil
}

// caveat says why the share of the limit may mislead, or "".
func (r *SpeedResult) caveat() string {
	switch {
	case r.GenLimit <= 0:
		return ""
	case r.GenShare > 1 && r.WeightBytes < cacheResident:
		return fmt.Sprintf("generation beats the memory-bandwidth limit: its %.1f MB of weights are read from the CPU caches, not memory, so the limit does not apply", float64(r.WeightBytes)/1e6)
	case r.GenShare > 1 && r.BandwidthSource == "measured":
		return fmt.Sprintf("generation beats the bandwidth limit, so the measured %.1f GB/s is too low: the machine was busy while it was measured, or its caches hold part of the %.0f MB of weights; pass the machine's bandwidth with --bandwidth", r.Bandwidth, float64(r.WeightBytes)/1e6)
	case r.GenShare > 1:
		return fmt.Sprintf("generation beats the bandwidth limit, so the given %.1f GB/s is too low, or the CPU caches hold part of the %.0f MB of weights", r.Bandwidth, float64(r.WeightBytes)/1e6)
	case r.WeightBytes < cacheResident:
		return fmt.Sprintf("the %.1f MB of weights may be served from the CPU caches: the memory-bandwidth limit is not a bound for them", float64(r.WeightBytes)/1e6)
	}
	return ""
}

func timePrompt(newSession func() (Forwarder, error), tokens []int) (time.Duration, error) {
	s, err := newSession()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := s.Forward(tokens); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func timeGen(newSession func() (Forwarder, error), tokens []int) (time.Duration, error) {
	s, err := newSession()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for _, t := range tokens {
		if _, err := s.Forward([]int{t}); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bandwidthBytes is the size of the buffer MeasureBandwidth streams: far
// beyond any cache.
const bandwidthBytes = 512 << 20

// Bandwidth measurement: at least bandwidthRuns products and at least
// bandwidthTime of them, so that one disturbed run cannot set the limit.
const (
	bandwidthRuns = 10
	bandwidthTime = time.Second
)

// Bandwidth is a repeated bandwidth measurement in GB/s.
type Bandwidth struct {
	Best, Median float64
	Runs         int
}

// MeasureBandwidth returns the memory read bandwidth in GB/s that the
// kernels reach with the current thread count: the best of at least ten
// f32 matrix-vector products over a 512 MiB matrix (a pure stream of
// reads, as generation is) spanning at least a second.
func MeasureBandwidth() float64 { return MeasureBandwidthRuns(bandwidthRuns, bandwidthTime).Best }

// MeasureBandwidthRuns is MeasureBandwidth with at least minRuns products
// taking at least minTime in all (at most 100 products).
func MeasureBandwidthRuns(minRuns int, minTime time.Duration) Bandwidth {
	p := newBandwidthProbe()
	defer p.close()
	return p.measure(minRuns, minTime)
}

// bandwidthProbe is the buffer MeasureBandwidth streams, kept so that it
// can be measured again between other measurements.
type bandwidthProbe struct {
	m      *kernels.Mat
	x, dst []float32
	free   func() error
}

func newBandwidthProbe() *bandwidthProbe {
	const cols = 4096
	m := &kernels.Mat{Rows: bandwidthBytes / 4 / cols, Cols: cols, Type: kernels.F32}
	// The probe streams huge pages, as the weights of a resident model do
	// (engine.Options.Mapped): on small pages it would also measure TLB
	// misses and set the limit too low.
	buf, free, err := hugemem.Alloc(bandwidthBytes)
	if err != nil {
		buf, free = make([]byte, bandwidthBytes), func() error { return nil }
	}
	m.F32 = unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(buf))), m.Rows*cols)
	for i := range m.F32 {
		m.F32[i] = float32(i & 7)
	}
	p := &bandwidthProbe{m: m, x: make([]float32, cols), dst: make([]float32, m.Rows), free: free}
	kernels.MatVec(p.dst, m, p.x) // warm-up
	return p
}

func (p *bandwidthProbe) measure(minRuns int, minTime time.Duration) Bandwidth {
	var runs []float64
	begin := time.Now()
	for len(runs) < minRuns || (time.Since(begin) < minTime && len(runs) < 100) {
		start := time.Now()
		kernels.MatVec(p.dst, p.m, p.x)
		runs = append(runs, float64(bandwidthBytes)/time.Since(start).Seconds()/1e9)
	}
	return Bandwidth{Best: slices.Max(runs), Median: median(runs), Runs: len(runs)}
}

func (p *bandwidthProbe) close() { p.free() }

// measureProbe measures p; tests replace it.
var measureProbe = (*bandwidthProbe).measure

// pairedRuns is how many probe runs follow each generation repeat for the
// paired share (about 50 ms).
const pairedRuns = 3

// WriteTable prints r as a small table.
func (r *SpeedResult) WriteTable(w io.Writer) {
	quant := r.Quant
	if quant == "" {
		quant = "-"
	}
	kern := r.Kernels
	if r.BF16Act != "" {
		kern += ", bf16 activations (" + r.BF16Act + ")"
	}
	fmt.Fprintf(w, "model %s, kernels %s, %d thread(s), quant %s, median of %d\n", r.Model, kern, r.Threads, quant, r.Repeats)
	if r.CPU != "" {
		fmt.Fprintf(w, "cpu %s\n", r.CPU)
	}
	if r.Weights != "" {
		fmt.Fprintf(w, "weights %s, %d MiB of memory in huge pages\n", r.Weights, r.HugePageMiB)
	}
	fmt.Fprintf(w, "%-8s %12s %12s %12s\n", "test", "tokens/s", "limit", "share")
	fmt.Fprintf(w, "%-8s %12.1f %12s %12s\n", fmt.Sprintf("pp%d", r.PromptTokens), r.PromptRate, "-", "-")
	mark := ""
	if r.Caveat != "" {
		mark = "*"
	}
	fmt.Fprintf(w, "%-8s %12.1f %12.1f %11.0f%%%s\n", fmt.Sprintf("tg%d", r.GenTokens), r.GenRate, r.GenLimit, 100*r.GenShare, mark)
	fmt.Fprintf(w, "weights read per token %.1f MB, bandwidth %.1f GB/s (%s", float64(r.WeightBytes)/1e6, r.Bandwidth, r.BandwidthSource)
	if r.BandwidthRuns > 0 {
		fmt.Fprintf(w, ": best of %d runs, median %.1f", r.BandwidthRuns, r.BandwidthMedian)
	}
	fmt.Fprintln(w, ")")
	if len(r.PairedShares) > 0 {
		fmt.Fprintf(w, "share of the bandwidth a probe measured right after each tg repeat: %.0f%% (median of %d)\n", 100*r.PairedShare, len(r.PairedShares))
	}
	if r.Caveat != "" {
		fmt.Fprintf(w, "* %s\n", r.Caveat)
	}
	for _, c := range r.Paths {
		how := "" // a family rule's pick (the JSON's reasons say which)
		switch {
		case strings.HasPrefix(c.Reason, "calibrated"):
			how = "  [calibrated]"
		case strings.HasPrefix(c.Reason, "cached calibration"):
			how = "  [calibrated, cached]"
		}
		fmt.Fprintf(w, "path %-22s %s%s\n", c.Kernel+":", c.Path, how)
	}
}

// WriteJSON prints r as indented JSON.
func (r *SpeedResult) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
