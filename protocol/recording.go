package protocol

// RecordingPrefix starts the name of every room's recording: the
// JetStream stream VIDHUB_<room> that package record keeps, which a
// publisher asks about and an access file grants rights on.
const RecordingPrefix = "VIDHUB_"

// RecordingStream is the name of room's recording's stream.
func RecordingStream(room string) string { return RecordingPrefix + room }

// JSAPIPrefix starts every JetStream API subject.
const JSAPIPrefix = "$JS.API."
