package main

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// timelineQuantiles are the latency quantiles drawn per interval.
var timelineQuantiles = []float64{0.5, 0.99}

// timelineSeries is one run drawn in the chart.
type timelineSeries struct {
	Name   string  // legend, e.g. "signal-client no-op"
	Points []point // intervals(samples, timelineQuantiles)
}

// minChartLatency is where the log latency axis starts; interpolated
// quantiles below it (inside the first, 0–1 ms bucket) are drawn on it.
const minChartLatency = 0.1 // ms

var seriesColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // blue
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // red
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // green
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, // purple
}

// renderTimeline draws throughput (top) and latency p50/p99 (bottom, log
// scale) over time for each series and returns a PNG.
func renderTimeline(series []timelineSeries, every string) ([]byte, error) {
	rate := plot.New()
	rate.Title.Text = "Throughput over time (messages handled per " + every + " interval, summed over workers)"
	rate.X.Label.Text = "time since first injection (s)"
	rate.Y.Label.Text = "messages handled / s"
	rate.Y.Min = 0
	rate.Y.Tick.Marker = linearTicks{}
	rate.Add(plotter.NewGrid())
	rate.Legend.Top = true

	lat := plot.New()
	lat.Title.Text = "Latency emit → handler start per interval (e2e histogram deltas, interpolated within buckets)"
	lat.X.Label.Text = "time since first injection (s)"
	lat.Y.Label.Text = "latency (ms, log scale)"
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = decadeTicks{}
	lat.Add(plotter.NewGrid())
	lat.Legend.Top = true

	maxLat := 1.0
	for i, s := range series {
		c := seriesColors[i%len(seriesColors)]
		var rxy plotter.XYs
		lxy := make([]plotter.XYs, len(timelineQuantiles))
		for _, p := range s.Points {
			x := p.T.Seconds()
			rxy = append(rxy, plotter.XY{X: x, Y: p.Rate})
			for qi, q := range p.Quantiles {
				if math.IsNaN(q) {
					continue // nothing handled in this interval
				}
				ms := math.Max(q*1000, minChartLatency)
				maxLat = math.Max(maxLat, ms)
				lxy[qi] = append(lxy[qi], plotter.XY{X: x, Y: ms})
			}
		}
		if len(rxy) > 0 {
			l, pts, err := plotter.NewLinePoints(rxy)
			if err != nil {
				return nil, err
			}
			l.Color, pts.Color = c, c
			l.Width = vg.Points(1.5)
			pts.Shape = draw.CircleGlyph{}
			pts.Radius = vg.Points(2)
			rate.Add(l, pts)
			rate.Legend.Add(s.Name, l, pts)
		}
		for qi, xy := range lxy {
			if len(xy) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(xy)
			if err != nil {
				return nil, err
			}
			l.Color, pts.Color = c, c
			l.Width = vg.Points(1.5)
			pts.Radius = vg.Points(2)
			if timelineQuantiles[qi] < 0.9 {
				l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
				pts.Shape = draw.BoxGlyph{}
			} else {
				pts.Shape = draw.CircleGlyph{}
			}
			lat.Add(l, pts)
			lat.Legend.Add(fmt.Sprintf("%s p%g", s.Name, timelineQuantiles[qi]*100), l, pts)
		}
	}
	// Room above the data for the legends; both plots start at t = 0.
	lat.Y.Min = minChartLatency
	lat.Y.Max = math.Pow(10, math.Ceil(math.Log10(maxLat))+1)
	rate.Y.Max = niceCeil(rate.Y.Max * 1.3)
	rate.X.Min, lat.X.Min = 0, 0
	rate.X.Max = math.Max(rate.X.Max, lat.X.Max)
	lat.X.Max = rate.X.Max
	for _, p := range []*plot.Plot{rate, lat} {
		p.Legend.YOffs = -vg.Points(8)
		p.Legend.XOffs = vg.Points(8)
		if !p.Legend.Left {
			p.Legend.XOffs = -vg.Points(8)
		}
	}

	const w, h = 11 * vg.Inch, 9 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(110))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(10), PadBottom: vg.Points(10), PadLeft: vg.Points(10),
		PadRight: vg.Points(20), PadY: vg.Points(25)}
	canvases := plot.Align([][]*plot.Plot{{rate}, {lat}}, tiles, dc)
	rate.Draw(canvases[0][0])
	lat.Draw(canvases[1][0])
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("bench: timeline png: %w", err)
	}
	return buf.Bytes(), nil
}

// niceCeil rounds v up to 1, 2 or 5 × a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// linearTicks labels about five round steps (1, 2 or 5 × 10^k) with plain
// integers, and puts unlabelled ticks halfway.
type linearTicks struct{}

func (linearTicks) Ticks(lo, hi float64) []plot.Tick {
	step := niceCeil((hi - lo) / 5)
	var ts []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step/1e6; v += step {
		ts = append(ts, plot.Tick{Value: v, Label: thousands(int(math.Round(v)))})
		if v+step/2 <= hi {
			ts = append(ts, plot.Tick{Value: v + step/2})
		}
	}
	return ts
}

// decadeTicks labels every power of ten of a log axis in plain numbers
// (0.1, 1, 10, …, 10 000) with unlabelled ticks at 2–9 × 10^k.
type decadeTicks struct{}

func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		d := math.Pow(10, e)
		if d >= lo*(1-1e-9) && d <= hi*(1+1e-9) {
			label := strconv.FormatFloat(d, 'f', -1, 64)
			if d >= 1000 {
				label = thousands(int(d))
			}
			ts = append(ts, plot.Tick{Value: d, Label: label})
		}
		for m := 2.0; m < 10; m++ {
			if v := m * d; v > lo && v < hi {
				ts = append(ts, plot.Tick{Value: v})
			}
		}
	}
	return ts
}
