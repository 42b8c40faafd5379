package main

import (
	"runtime"
	"syscall"
	"time"
)

// prctl options (linux/prctl.h); package syscall does not name them.
const (
	prSetTimerSlack = 29
	prGetTimerSlack = 30
)

// preciseSleeper prepares the calling goroutine for sleepUntil: it keeps
// it on one OS thread and sets that thread's timer slack to 1 ns, as the
// kernel would otherwise defer the wake-up by up to 50 µs to batch timers.
// The returned function restores the slack and releases the thread.
func preciseSleeper() (done func()) {
	runtime.LockOSThread()
	old, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0)
	return func() {
		syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, old, 0)
		runtime.UnlockOSThread()
	}
}

// sleepUntil blocks the thread in nanosleep(2), which an hrtimer wakes,
// rather than in the Go scheduler, whose sleeps round up to whole
// milliseconds on Linux.
func sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		// EINTR (the runtime's preemption signal) just loops.
		if syscall.Nanosleep(&ts, nil) == nil {
			return
		}
	}
}
