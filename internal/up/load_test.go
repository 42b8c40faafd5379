package up

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRotationAndPolicyUpdateUnderLoad sends allowed traffic through the
// mesh without pause — HTTP on kept-alive and on new connections, and TCP
// connections on PostgreSQL's port — while every SVID rotates (20 s
// lifetimes, renewed at half life) and a policy file is edited and
// redistributed to every proxy. No request may fail.
func TestRotationAndPolicyUpdateUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a loaded mesh for 15s")
	}
	dir := t.TempDir()
	system := filepath.Join(dir, "system")
	if err := copyDir(fixed, system); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := Start(ctx, Options{Files: []string{system}, StateDir: filepath.Join(dir, "state"), SVIDTTL: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pay, _ := m.Route("production/payment-processor", "production/payment-service", 8080)
	pg, _ := m.Route("production/backend-api", "production/postgres", 5432)
	backend := m.Find("production/payment-service")
	firstVersion := backend.Client.Current()
	serial := func() string {
		svid, err := backend.SVIDs.GetX509SVID()
		if err != nil {
			t.Fatal(err)
		}
		return svid.Certificates[0].SerialNumber.String()
	}
	firstSerial := serial()

	var ok, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	fail := func(what string) {
		failed.Add(1)
		failMu.Lock()
		if len(failures) < 10 {
			failures = append(failures, what)
		}
		failMu.Unlock()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var got, want string
				var err error
				switch i {
				case 0: // one kept-alive connection to the client's proxy
					want = "200"
					got, err = keepAlive(ctx, client, pay)
				case 1, 2: // a new connection each time
					want = "200"
					got, err = httpCall(ctx, pay, "POST", "/v1/charges", "payment-service.production.svc.cluster.local", nil)
				default:
					want = "echoed"
					got, err = tcpCall(ctx, pg)
				}
				switch {
				case err != nil:
					fail(err.Error())
				case got != want:
					fail(fmt.Sprintf("worker %d: %s, want %s", i, got, want))
				default:
					ok.Add(1)
				}
			}
		}()
	}

	// Mid-run, allow a new path; the proxies must switch versions without
	// dropping a request.
	time.Sleep(4 * time.Second)
	path := filepath.Join(system, "manifests", "security", "authorization-policies.yaml")
	data, _ := os.ReadFile(path)
	edited := strings.Replace(string(data), "paths: ['/v1/charges', '/v1/payments']", "paths: ['/v1/charges', '/v1/payments', '/v1/refunds']", 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(11 * time.Second)
	close(stop)
	wg.Wait()

	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed: %v", failed.Load(), failed.Load()+ok.Load(), failures)
	}
	if ok.Load() < 100 {
		t.Errorf("only %d requests", ok.Load())
	}
	if v := backend.Client.Current(); v == firstVersion {
		t.Errorf("payment-service still runs policy %s", v)
	}
	if got, _ := httpCall(ctx, pay, "POST", "/v1/refunds", "payment-service.production.svc.cluster.local", nil); got != "200" {
		t.Errorf("the edited policy is not in force: POST /v1/refunds %s", got)
	}
	if serial() == firstSerial {
		t.Error("payment-service's SVID did not rotate")
	}
	t.Logf("%d requests, none failed", ok.Load())
}

// keepAlive posts a charge on a client that reuses its connection.
func keepAlive(ctx context.Context, c *http.Client, addr string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/charges", strings.NewReader("{}"))
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return strconv.Itoa(resp.StatusCode), nil
}

func copyDir(src, dst string) error {
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
}
