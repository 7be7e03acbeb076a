// Package mediatest makes media for tests of the packages above media:
// video clips for the file sources. Like media, it is the only place
// besides media that uses OpenCV; in builds without OpenCV its helpers
// skip the test.
package mediatest
