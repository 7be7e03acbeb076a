package web

import "github.com/vidhub/vidhub/internal/webtoken"

// canReplay returns nil when c lets its holder replay room's recording:
// the replay right, for that room (webtoken.Claims.CanReplay).
func canReplay(c webtoken.Claims, room string) error { return c.CanReplay(room) }
