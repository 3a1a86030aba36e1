package console

import (
	"context"
	"fmt"
	"time"

	"github.com/smartlite/crmkit/webhook/outbound"
)

// The chart counts an endpoint's deliveries of the last 24 hours by the
// hour they were created, split by status. It reads at most chartCap of
// them (the log's newest first), which bounds the page's cost for a busy
// endpoint; the chart then says it shows only those.
const (
	chartHours = 24
	chartPage  = 500
	chartCap   = 4 * chartPage
)

// Geometry of the SVG, in its own units; CSS scales it to the page width.
// The margins hold the labels at the larger type phones get (see
// console.css), where the chart is drawn at under half its size.
const (
	chartWidth  = 720.0
	chartHeight = 220.0
	chartLeft   = 64.0
	chartRight  = 8.0
	chartTop    = 14.0
	chartBottom = 40.0
)

type chart struct {
	Width, Height    float64
	PlotTop, PlotEnd float64 // y of the plot's top and baseline
	Left, Right      float64 // x of the plot's edges
	Bars             []chartBar
	XLabels          []chartLabel
	YLabels          []chartLabel
	Total, Failed    int
	// Capped says older deliveries of the period were left out.
	Capped bool
}

type chartBar struct {
	Title string
	Rects []chartRect
}

type chartRect struct {
	X, Y, W, H float64
	Class      string
}

type chartLabel struct {
	X, Y float64
	Text string
	// LineY is the y of a y label's grid line.
	LineY float64
}

type chartBucket struct{ succeeded, failed, pending int }

func (b chartBucket) total() int { return b.succeeded + b.failed + b.pending }

// chart counts the deliveries of the last chartHours hours by hour and
// status: with the Webhooks' DeliveryCounter when it has one, else reading
// the log newest first from first, the log's first page.
func (h *handler) chart(ctx context.Context, ws, endpointID string, now time.Time, first []*outbound.Delivery) (chart, error) {
	now = now.UTC()
	start := now.Truncate(time.Hour).Add(-(chartHours - 1) * time.Hour)
	var buckets [chartHours]chartBucket
	if counter, ok := h.webhooks.(DeliveryCounter); ok {
		counts, err := counter.CountDeliveries(ctx, ws, endpointID, start)
		if err != nil {
			return chart{}, err
		}
		for hour, byStatus := range counts {
			i := int(hour.Sub(start) / time.Hour)
			if hour.Before(start) || i >= chartHours {
				continue
			}
			for status, n := range byStatus {
				switch status {
				case outbound.StatusSucceeded:
					buckets[i].succeeded += n
				case outbound.StatusFailed:
					buckets[i].failed += n
				default:
					buckets[i].pending += n
				}
			}
		}
		return layoutChart(buckets[:], start), nil
	}
	q := outbound.DeliveryQuery{Workspace: ws, EndpointID: endpointID, Limit: chartPage}
	capped, read := false, 0
	ds := first
	for {
		done := len(ds) < chartPage
		for _, d := range ds {
			if d.CreatedAt.Before(start) {
				done = true
				break
			}
			i := int(d.CreatedAt.Sub(start) / time.Hour)
			if i >= chartHours {
				continue
			}
			switch d.Status {
			case outbound.StatusSucceeded:
				buckets[i].succeeded++
			case outbound.StatusFailed:
				buckets[i].failed++
			default:
				buckets[i].pending++
			}
		}
		read += len(ds)
		if done {
			break
		}
		if read >= chartCap {
			capped = true
			break
		}
		q.Before = ds[len(ds)-1].ID
		var err error
		if ds, err = h.webhooks.Deliveries(ctx, q); err != nil {
			return chart{}, err
		}
	}
	out := layoutChart(buckets[:], start)
	out.Capped = capped
	return out, nil
}

// layoutChart places one stacked bar per hour: succeeded at the bottom,
// then failed, then pending.
func layoutChart(buckets []chartBucket, start time.Time) chart {
	c := chart{Width: chartWidth, Height: chartHeight, PlotTop: chartTop, PlotEnd: chartHeight - chartBottom,
		Left: chartLeft, Right: chartWidth - chartRight}
	peak := 0
	for _, b := range buckets {
		peak = max(peak, b.total())
		c.Total += b.total()
		c.Failed += b.failed
	}
	top := niceCeil(peak)
	plotH := c.PlotEnd - c.PlotTop
	slot := (c.Right - c.Left) / float64(len(buckets))
	for i, b := range buckets {
		from := start.Add(time.Duration(i) * time.Hour)
		bar := chartBar{Title: fmt.Sprintf("%s–%s UTC: %d deliveries, %d succeeded, %d failed, %d pending",
			from.Format("15:04"), from.Add(time.Hour).Format("15:04"), b.total(), b.succeeded, b.failed, b.pending)}
		x := c.Left + float64(i)*slot + slot*0.15
		y := c.PlotEnd
		for _, part := range []struct {
			n     int
			class string
		}{{b.succeeded, "ok"}, {b.failed, "fail"}, {b.pending, "pending"}} {
			if part.n == 0 {
				continue
			}
			hgt := plotH * float64(part.n) / float64(top)
			y -= hgt
			bar.Rects = append(bar.Rects, chartRect{X: round1(x), Y: round1(y), W: round1(slot * 0.7), H: round1(hgt), Class: part.class})
		}
		// An empty hour still gets a hover target with its title.
		if len(bar.Rects) == 0 {
			bar.Rects = []chartRect{{X: round1(x), Y: c.PlotTop, W: round1(slot * 0.7), H: plotH, Class: "empty"}}
		}
		c.Bars = append(c.Bars, bar)
		if i%6 == 0 {
			// An hour's label starts where its bar does, clear of the
			// y axis's labels however large phones draw them.
			c.XLabels = append(c.XLabels, chartLabel{X: round1(x), Y: c.PlotEnd + 8, Text: from.Format("15:04")})
		}
	}
	for _, v := range []int{0, top / 2, top} {
		y := c.PlotEnd - plotH*float64(v)/float64(top)
		c.YLabels = append(c.YLabels, chartLabel{X: c.Left - 8, Y: round1(y), LineY: round1(y), Text: fmt.Sprint(v)})
	}
	return c
}

// niceCeil answers the axis top for a peak: the peak rounded up to 2, 4, 6,
// 8 or 10 times a power of ten, so that the axis's middle label is a whole
// number too.
func niceCeil(n int) int {
	if n <= 2 {
		return 2
	}
	for step := 1; ; step *= 10 {
		for _, m := range []int{2, 4, 6, 8, 10} {
			if n <= m*step {
				return m * step
			}
		}
	}
}

func round1(f float64) float64 { return float64(int(f*10+0.5)) / 10 }
