package web

import "github.com/vidhub/vidhub/internal/webtoken"

// canReplay returns nil when c lets its holder replay room's recording.
// TODO(replay right): c.CanReplay(room) once webtoken has it.
func canReplay(c webtoken.Claims, room string) error { return c.CanView(room) }
