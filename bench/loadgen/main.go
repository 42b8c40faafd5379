// Command loadgen drives the data-plane benchmark (bench/run.sh): an
// HTTP/1.1 keep-alive load generator, and the upstream application it
// measures against.
//
//	loadgen -url http://127.0.0.1:8080/ -rate 1000 -duration 20s   # open loop
//	loadgen -url http://127.0.0.1:8080/ -duration 15s              # saturation
//	loadgen -serve 127.0.0.1:8080                                  # the backend
//
// Fixed rate is an open loop: request i is due at start+i/rate whatever
// happened to the ones before it, and its latency runs from that due time,
// so a stalled proxy is charged for the requests that queued behind the
// stall (no coordinated omission). Saturation is a closed loop: each
// worker sends its next request as soon as the last one is answered.
//
// Both print one JSON object; latencies are in microseconds.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"
)

func main() {
	var (
		target   = flag.String("url", "", "URL to GET (http only)")
		rate     = flag.Float64("rate", 0, "requests per second, open loop; 0 saturates with -conns closed-loop workers")
		conns    = flag.Int("conns", 16, "keep-alive connections (= workers)")
		duration = flag.Duration("duration", 20*time.Second, "measured duration")
		warmup   = flag.Duration("warmup", 2*time.Second, "load before the measurement, not counted (connections, TLS handshakes, pools)")
		serve    = flag.String("serve", "", "serve the benchmark's backend on this address instead")
		check    = flag.Bool("check", false, "send one GET to -url; exit 0 only on 200")
		free     = flag.Int("free-ports", 0, "print this many free 127.0.0.1 ports, one a line, and exit")
	)
	flag.Parse()
	switch {
	case *serve != "":
		fatal(serveBackend(*serve))
	case *free > 0:
		fatal(freePorts(*free))
		return
	case *target == "":
		fatal(fmt.Errorf("-url, -serve or -free-ports is required"))
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		fatal(fmt.Errorf("-url %q: want http://HOST:PORT/PATH", *target))
	}
	req := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: palisade-bench\r\n\r\n")
	if *check {
		c := &conn{addr: u.Host, req: req}
		if err := c.do(); err != nil {
			fatal(fmt.Errorf("GET %s: %v", *target, err))
		}
		return
	}
	if *conns < 1 || *duration <= 0 || *warmup < 0 || *rate < 0 {
		fatal(fmt.Errorf("-conns must be positive, -duration positive, -warmup and -rate not negative"))
	}
	var res result
	if *rate > 0 {
		res = openLoop(u.Host, req, *rate, *conns, *warmup, *duration)
	} else {
		res = closedLoop(u.Host, req, *conns, *warmup, *duration)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	fatal(enc.Encode(res))
}

func fatal(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// result is what one run prints.
type result struct {
	Mode      string  `json:"mode"` // "rate" or "saturation"
	TargetRPS float64 `json:"target_rps,omitempty"`
	Conns     int     `json:"conns"`
	DurationS float64 `json:"duration_s"`
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	RPS       float64 `json:"rps"`
	P50us     float64 `json:"p50_us"`
	P90us     float64 `json:"p90_us"`
	P99us     float64 `json:"p99_us"`
	P999us    float64 `json:"p999_us"`
	MaxUs     float64 `json:"max_us"`
	// SendLag is how late the open loop wrote requests after their due
	// time: the load generator's own timing error, which the latencies
	// include.
	SendLagP50 float64 `json:"send_lag_p50_us,omitempty"`
	SendLagP99 float64 `json:"send_lag_p99_us,omitempty"`
}

// conn is one keep-alive connection that redials after an error.
type conn struct {
	addr string
	req  []byte
	c    net.Conn
	br   *bufio.Reader
	jobs chan job // open loop: the requests sent, for the reader
}

// job is a request the open loop's dispatcher has sent (or failed to).
type job struct {
	due time.Time
	err error
}

// do sends one request and reads the whole response.
func (c *conn) do() error {
	if err := c.send(); err != nil {
		return err
	}
	return c.receive()
}

// send writes the request, dialing first if the connection is down.
func (c *conn) send() error {
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return err
		}
		c.c, c.br = nc, bufio.NewReader(nc)
	}
	// A request stuck behind a broken proxy must end as an error, not
	// hang the run.
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.c.Write(c.req); err != nil {
		c.close()
		return err
	}
	return nil
}

// receive reads the response to the request sent. Any failure closes the
// connection, so the next request starts on a clean one.
func (c *conn) receive() error {
	resp, err := http.ReadResponse(c.br, nil)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err != nil {
		c.close()
		return err
	}
	if resp.Close {
		c.close()
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// recorder collects the latencies and errors of the measured requests.
type recorder struct {
	mu   sync.Mutex
	lat  []time.Duration
	errs int
}

func (r *recorder) add(lat []time.Duration, errs int) {
	r.mu.Lock()
	r.lat = append(r.lat, lat...)
	r.errs += errs
	r.mu.Unlock()
}

// openLoop sends rate requests a second for warmup+duration over conns
// connections. The dispatcher writes each request at its due time on the
// least recently used idle connection, whose reader goroutine then waits
// for the response; when no connection is idle, the request waits for one,
// and that wait is part of its latency. Writing from the dispatcher
// itself, rather than waking a worker goroutine to write, keeps the
// scheduler's wake-up latency, which grows with the load on the machine,
// out of the numbers.
func openLoop(addr string, req []byte, rate float64, conns int, warmup, duration time.Duration) result {
	interval := float64(time.Second) / rate
	total := int(rate * (warmup + duration).Seconds())
	start := time.Now().Add(50 * time.Millisecond)
	measureFrom := start.Add(warmup)

	var rec recorder
	var wg sync.WaitGroup
	idle := make(chan *conn, conns)
	for range conns {
		c := &conn{addr: addr, req: req, jobs: make(chan job, 1)}
		idle <- c
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for j := range c.jobs {
				err := j.err
				if err == nil {
					err = c.receive()
				}
				if !j.due.Before(measureFrom) {
					if err != nil {
						errs++
					} else {
						lat = append(lat, time.Since(j.due))
					}
				}
				idle <- c
			}
			rec.add(lat, errs)
		}()
	}

	// Go's timers wake up to a millisecond late on Linux, which at 1,000
	// rps is the whole interval; sleepUntil is precise to tens of
	// microseconds.
	lag := make([]time.Duration, 0, total)
	done := preciseSleeper()
	for i := range total {
		t := start.Add(time.Duration(float64(i) * interval))
		sleepUntil(t)
		c := <-idle
		sent := time.Now()
		err := c.send()
		c.jobs <- job{due: t, err: err}
		if !t.Before(measureFrom) {
			lag = append(lag, sent.Sub(t))
		}
	}
	done()
	for range conns {
		close((<-idle).jobs)
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)

	r := summarize(rec.lat, rec.errs, max(elapsed, duration))
	r.Mode, r.TargetRPS, r.Conns = "rate", rate, conns
	r.DurationS = duration.Seconds()
	slices.Sort(lag)
	r.SendLagP50, r.SendLagP99 = micros(pct(lag, 0.50)), micros(pct(lag, 0.99))
	return r
}

// closedLoop runs conns workers back to back for warmup+duration and
// counts what completes after the warmup.
func closedLoop(addr string, req []byte, conns int, warmup, duration time.Duration) result {
	start := time.Now()
	measureFrom, end := start.Add(warmup), start.Add(warmup+duration)
	var rec recorder
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &conn{addr: addr, req: req}
			defer c.close()
			var lat []time.Duration
			errs := 0
			for t := time.Now(); t.Before(end); t = time.Now() {
				err := c.do()
				switch {
				case t.Before(measureFrom):
				case err != nil:
					errs++
				default:
					lat = append(lat, time.Since(t))
				}
				if err != nil {
					// Without a pause, a refused connection would spin
					// and count errors by the million.
					time.Sleep(10 * time.Millisecond)
				}
			}
			rec.add(lat, errs)
		}()
	}
	wg.Wait()
	r := summarize(rec.lat, rec.errs, time.Since(measureFrom))
	r.Mode, r.Conns, r.DurationS = "saturation", conns, duration.Seconds()
	return r
}

func summarize(lat []time.Duration, errs int, elapsed time.Duration) result {
	slices.Sort(lat)
	n := len(lat) + errs
	return result{
		Requests: n, Errors: errs,
		RPS:   math.Round(float64(n)/elapsed.Seconds()*10) / 10,
		P50us: micros(pct(lat, 0.50)), P90us: micros(pct(lat, 0.90)),
		P99us: micros(pct(lat, 0.99)), P999us: micros(pct(lat, 0.999)),
		MaxUs: micros(pct(lat, 1)),
	}
}

// pct is the q-quantile of sorted d by the nearest-rank method.
func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[max(i, 0)]
}

func micros(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)*10) / 10 }

// serveBackend is the application behind the proxies: a 200 with a small
// body, kept alive, so the backend's own cost is small and the same in
// every setup.
func serveBackend(addr string) error {
	body := []byte("hello from the benchmark backend\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// freePorts lets the shell script pick loopback ports: it binds them all
// at once, so they are distinct, then releases them.
func freePorts(n int) error {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}
