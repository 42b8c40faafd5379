//go:build !linux

package main

import "time"

// preciseSleeper has nothing to prepare where sleepUntil is time.Sleep.
func preciseSleeper() (done func()) { return func() {} }

// sleepUntil falls back to the Go scheduler's timers: coarser, but the
// benchmark's numbers come from Linux (it reads /proc).
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }
