package main

import "github.com/vidhub/vidhub/internal/media"

// opencvVersion says, for vidhub version, what native media code this
// build has: the OpenCV version, or that it has none.
func opencvVersion() string { return media.Describe() }
