package up

import (
	"strings"
	"testing"
)

func TestParseTraffic(t *testing.T) {
	good := `# comment
a/x b/y 8080 GET /p token:role=admin,plan=basic   # trailing comment
a/x b/y 5432
a/x b/y 80 POST /v1 forged
a/x b/y 80 GET / token
`
	calls, err := ParseTraffic("t.txt", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []Call{
		{Line: 2, From: "a/x", To: "b/y", Port: 8080, Method: "GET", Path: "/p", Token: "role=admin,plan=basic"},
		{Line: 3, From: "a/x", To: "b/y", Port: 5432},
		{Line: 4, From: "a/x", To: "b/y", Port: 80, Method: "POST", Path: "/v1", Token: "forged"},
		{Line: 5, From: "a/x", To: "b/y", Port: 80, Method: "GET", Path: "/", Token: "sub=user-demo"},
	}
	if len(calls) != len(want) {
		t.Fatalf("got %+v", calls)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", want[i].Line, calls[i], want[i])
		}
	}
	for _, bad := range []struct{ in, msg string }{
		{"a/x b/y", "t.txt:1: want FROM TO PORT"},
		{"a/x b/y 0", "t.txt:1: port"},
		{"a/x b/y 70000", "t.txt:1: port"},
		{"\na/x b/y 80 GET", "t.txt:2: a method needs a path"},
		{"a/x b/y 80 token", "t.txt:1: a token needs an HTTP request"},
		{"a/x b/y 80 GET / token extra", `t.txt:1: unexpected "extra"`},
		{"a/x b/y 80 GET / token:", "t.txt:1: token: needs claims"},
	} {
		_, err := ParseTraffic("t.txt", []byte(bad.in))
		if err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%q: error %v, want %q", bad.in, err, bad.msg)
		}
	}
}

// FuzzParseTraffic: any input is parsed or refused with a positioned
// error, never a panic, and what parses has a port and both ends.
func FuzzParseTraffic(f *testing.F) {
	f.Add([]byte("a/x b/y 8080 GET /p token:role=admin\n# c\na/x b/y 5432\n"))
	f.Add([]byte("a b 1 forged"))
	f.Fuzz(func(t *testing.T, data []byte) {
		calls, err := ParseTraffic("f.txt", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.txt:") {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		for _, c := range calls {
			if c.From == "" || c.To == "" || c.Port == 0 || (c.Token != "" && c.Method == "") {
				t.Fatalf("bad call %+v", c)
			}
		}
	})
}
