// Package deploy holds what operators deploy imapbridge with: the container
// image (Dockerfile), a Docker Compose stack with Prometheus and Grafana,
// the Prometheus alert rules and their unit tests, the Grafana dashboard, a
// systemd unit and an example configuration. See README.md.
//
// The package has no Go code of its own. Its tests parse every file and
// check that they agree with each other and with the binary: ports, paths,
// volumes, the metric names queried, the sandboxing of the unit; and they
// run promtool on the Prometheus configuration and rules.
//
// It imports nothing of this module: its tests read the files, and build and
// run the binary from the outside.
package deploy
