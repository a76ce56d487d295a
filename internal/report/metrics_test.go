package report

import (
	"bytes"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// FuzzMetricsText: what distlock writes for any lock name and any value
// is the text format as Prometheus' own parser reads it, with the name and
// the value intact; and distlock reads its own back the same. Whatever
// else is in a previous file, reading it does not panic.
func FuzzMetricsText(f *testing.F) {
	f.Add("db", 1764133000.25, []byte("{}\n"))
	f.Add(`q"uo\te`, 0.0, []byte(`distlock_last_run_timestamp_seconds{lock="a\"b"} 1`+"\n"))
	f.Add("ü name/with space", 1e300, []byte(`distlock_last_run_timestamp_seconds{lock="x\q"} 1`))
	f.Add("x", math.Inf(1), []byte("distlock_last_run_timestamp_seconds{lock=\"x\"} 1\ndistlock_last_run_timestamp_seconds{lock=\"y\"} 2\n"))
	f.Fuzz(func(t *testing.T, name string, value float64, previous []byte) {
		_, _ = findSample(previous, metricLastRun) // any bytes: no panic

		if !utf8.ValidString(name) || math.IsNaN(value) {
			return // distlock makes every name valid UTF-8 first; no NaN is written
		}
		var b bytes.Buffer
		family{name: metricLastRun, help: "help with \\ and\nnewline",
			samples: []sample{{labels: [][2]string{{"lock", name}}, value: value}}}.writeTo(&b)

		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatalf("%q does not parse: %v", b.String(), err)
		}
		m := families[metricLastRun].GetMetric()
		if len(m) != 1 || len(m[0].GetLabel()) != 1 || m[0].GetLabel()[0].GetValue() != name || m[0].GetGauge().GetValue() != value {
			t.Fatalf("%q reads as %v, want lock %q, value %v", b.String(), m, name, value)
		}
		if help := families[metricLastRun].GetHelp(); help != "help with \\ and\nnewline" {
			t.Errorf("help reads as %q", help)
		}
		got, ok := findSample(b.Bytes(), metricLastRun)
		if !ok || got.lock != name || got.value != value {
			t.Fatalf("distlock reads %q back as %+v, %v", b.String(), got, ok)
		}
	})
}
