// Package protocol owns vidhub's wire protocol, version 1: the names of
// rooms and participants, the NATS subjects built from them, the headers
// that travel with every frame, and the presence document each participant
// beats once a second.
//
// Nothing else in vidhub builds a subject or a header by hand; every
// publisher, viewer and gateway goes through this package, so the protocol
// lives in exactly one place.
//
//	vidhub.<room>.<participant>.hi        full-size JPEG frames
//	vidhub.<room>.<participant>.lo        ~320 px wide JPEG thumbnails
//	vidhub.<room>.<participant>.presence  JSON, at least once a second
package protocol
