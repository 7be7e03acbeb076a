// Package deploy holds vidhub's deployment files rather than Go code: the
// container image (Dockerfile), stock nats-server configurations (nats/),
// the systemd unit and installer of the Linux VM publisher, and env
// examples. The compose stack is docker-compose.yml at the module root;
// compose/ holds its broker's cluster settings (standalone or the cluster
// profile's).
//
// Its tests check those files with the real tools: Docker and compose
// bring the stack up, nats-server runs the configurations, and
// systemd-analyze verifies the unit.
package deploy
