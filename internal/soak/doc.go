// Package soak holds vidhub's soak test: a broker, four publishers and ten
// headless viewers, each its own process, run for a long time while the
// goroutines, memory and open OpenCV Mats of every process are watched.
// It runs only when asked: make soak SOAK=10m, or
//
//	go test -run TestSoak -timeout 15m ./soak -args -soak 10m
package soak
