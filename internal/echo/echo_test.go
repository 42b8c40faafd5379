package echo

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"testing"
)

func TestHTTPEcho(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go ServeHTTP(l, "production/backend-api")
	req, _ := http.NewRequest("POST", "http://"+l.Addr().String()+"/api/v1/users?x=1", nil)
	req.Header.Set("X-Forwarded-Client-Cert", "By=spiffe://cluster.local/ns/production/sa/backend;Hash=ab;URI=spiffe://cluster.local/ns/production/sa/frontend")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Reply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Workload != "production/backend-api" || r.Method != "POST" || r.Path != "/api/v1/users?x=1" ||
		r.Peer != "spiffe://cluster.local/ns/production/sa/frontend" {
		t.Errorf("reply %+v", r)
	}
}

func TestTCPEcho(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go ServeTCP(l)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Errorf("read %q, %v", line, err)
	}
}
