//go:build !cgo || vidhub_lite

package bench

// publisherEncoder is the encoder vidhub's publisher uses in this build.
const publisherEncoder = "stdlib"

// encoders are the encoders of this build: the standard library's only.
func encoders() []encoder { return []encoder{stdlibEncoder()} }
