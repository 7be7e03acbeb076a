package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/vidhub/vidhub/internal/natsconn"
	"github.com/vidhub/vidhub/protocol"
	"github.com/vidhub/vidhub/subscriber"
)

func runRooms(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flagSet("rooms")
	asJSON := fs.Bool("json", false, "print JSON")
	wait := fs.Duration("wait", subscriber.ListenFor, "how long to listen for presence (a little over one beat)")
	var cf clientFlags
	cf.register(fs)
	if err := env.parse(fs, args); err != nil {
		return err
	}
	log, err := env.logger(cf.logLevel)
	if err != nil {
		return err
	}
	nc, err := natsconn.Connect(cf.config("vidhub rooms", log))
	if err != nil {
		return err
	}
	defer natsconn.Close(nc)
	rooms, err := subscriber.ListRooms(ctx, nc, *wait)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if rooms == nil {
			rooms = []protocol.RoomInfo{}
		}
		return enc.Encode(rooms)
	}
	if len(rooms) == 0 {
		fmt.Fprintln(env.stdout, "no rooms: nobody is publishing")
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOM\tPARTICIPANT\tROLE\tSIZE\tFPS\tVIEWS")
	for _, r := range rooms {
		for _, m := range r.Members {
			size, fps := "-", "-"
			for _, l := range m.Layers {
				if l.Layer == protocol.Hi {
					size, fps = protocol.FormatSize(l.Width, l.Height), fmt.Sprintf("%g", l.FPS)
				}
			}
			views := make([]string, len(m.Views))
			for i, v := range m.Views {
				views[i] = string(v)
			}
			role := string(m.Role)
			if m.Unverified {
				role += "?" // presence only: this user may not read frames to check
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Room, m.Name, role, size, fps, strings.Join(views, ","))
		}
	}
	return tw.Flush()
}
