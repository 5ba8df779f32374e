package main

import (
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/rig"
)

// TestMain runs every test at once unless -parallel says otherwise. The process tests spend their
// time waiting, in real time, on the rotator processes, moto and the emulator rather than on this
// process's CPU, so the default (GOMAXPROCS, two on a small CI machine) would leave them queued
// behind one another while the machine idles; and TestDaemonProcess, the longest, must not wait
// for a slot.
func TestMain(m *testing.M) { rig.Main(m, 32) }
