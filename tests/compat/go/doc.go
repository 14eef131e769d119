// Package compat holds the franz-go compatibility tests (go test, BOOTSTRAP=host:port).
package compat
