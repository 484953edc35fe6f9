package bench

import (
	"fmt"
	"image/color"
	"path/filepath"
	"regexp"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/mocolab/moco/collab"
)

var reUnsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Charts writes SVG charts into dir with gonum/plot and returns their
// paths: per dataset a bar chart of every method's score with the best
// single model as a dashed line; and, when a method was run over pools of
// different sizes, a scaling plot of its mean score against the number of
// models.
func (rep *Report) Charts(dir string) ([]string, error) {
	var out []string
	for _, d := range rep.Datasets {
		p := plot.New()
		p.Title.Text = d
		p.Y.Label.Text = "score ×100"
		var names []string
		var vals plotter.Values
		for i := range rep.Rows {
			r := &rep.Rows[i]
			if v, ok := r.Score[d]; ok {
				names = append(names, r.Method)
				vals = append(vals, 100*v)
			}
		}
		if len(vals) == 0 {
			continue
		}
		bars, err := plotter.NewBarChart(vals, vg.Points(14))
		if err != nil {
			return out, err
		}
		bars.Color = color.RGBA{R: 70, G: 110, B: 180, A: 255}
		p.Add(bars)
		if b, ok := rep.BestSingle[d]; ok {
			line, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 100 * b}, {X: float64(len(vals)) - 0.5, Y: 100 * b}})
			if err != nil {
				return out, err
			}
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			line.Color = color.RGBA{R: 200, G: 60, B: 40, A: 255}
			p.Add(line)
			p.Legend.Add("best single model", line)
			p.Legend.Top = true
		}
		p.NominalX(names...)
		p.X.Tick.Label.Rotation = 0.6
		p.X.Tick.Label.XAlign = -0.9
		p.Y.Min = 0
		path := filepath.Join(dir, "bars-"+reUnsafeName.ReplaceAllString(d, "_")+".svg")
		if err := p.Save(vg.Points(float64(120+30*len(vals))), vg.Points(300), path); err != nil {
			return out, err
		}
		out = append(out, path)
	}
	// Scaling: mean score over datasets against pool size, per registry name.
	type pt struct{ n, v float64 }
	series := map[string][]pt{}
	for i := range rep.Rows {
		r := &rep.Rows[i]
		if r.Level == string(collab.LevelSingle) || r.Name == "" {
			continue
		}
		if v, ok := rep.value(r, "avg"); ok {
			series[r.Name] = append(series[r.Name], pt{float64(len(r.Models)), 100 * v})
		}
	}
	var names []string
	for n, pts := range series {
		sizes := map[float64]bool{}
		for _, p := range pts {
			sizes[p.n] = true
		}
		if len(sizes) > 1 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) > 0 {
		p := plot.New()
		p.Title.Text = "score vs number of models"
		p.X.Label.Text = "models in the pool"
		p.Y.Label.Text = "mean score ×100"
		for k, n := range names {
			pts := series[n]
			sort.Slice(pts, func(i, j int) bool { return pts[i].n < pts[j].n })
			xys := make(plotter.XYs, len(pts))
			for i, q := range pts {
				xys[i] = plotter.XY{X: q.n, Y: q.v}
			}
			l, s, err := plotter.NewLinePoints(xys)
			if err != nil {
				return out, err
			}
			c := palette[k%len(palette)]
			l.Color, s.Color = c, c
			p.Add(l, s)
			p.Legend.Add(n, l, s)
		}
		path := filepath.Join(dir, "scaling.svg")
		if err := p.Save(vg.Points(420), vg.Points(300), path); err != nil {
			return out, fmt.Errorf("scaling plot: %w", err)
		}
		out = append(out, path)
	}
	return out, nil
}

var palette = []color.Color{
	color.RGBA{R: 70, G: 110, B: 180, A: 255}, color.RGBA{R: 200, G: 60, B: 40, A: 255},
	color.RGBA{R: 60, G: 150, B: 80, A: 255}, color.RGBA{R: 150, G: 80, B: 170, A: 255},
	color.RGBA{R: 220, G: 150, B: 30, A: 255},
}
