package httpnorm

import "testing"

// BenchmarkPath shows the common case: a clean path with a query is returned
// as sub-strings of the input, with no allocation, in every mode.
func BenchmarkPath(b *testing.B) {
	cases := []struct {
		name string
		in   string
		m    Mode
	}{
		{"clean/Base", "/api/v1/users?id=3", Base},
		{"clean/None", "/api/v1/users?id=3", None},
		{"clean/MergeSlashes", "/api/v1/users?id=3", MergeSlashes},
		{"clean/DecodeAndMergeSlashes", "/api/v1/users?id=3", DecodeAndMergeSlashes},
		{"dotdot/Base", "/public/%2e%2e/private?id=3", Base},
		{"escapes/DecodeAndMergeSlashes", "/a%2F..%2Fb//c%41?id=3", DecodeAndMergeSlashes},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _, _ = Path(c.in, c.m)
			}
		})
	}
}
