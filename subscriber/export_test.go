package subscriber

// SetGateGaps turns the H.264 gap gate off (or back on) for a test.
func SetGateGaps(on bool) { gateGaps = on }
