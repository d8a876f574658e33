package config

// The authentication settings: when authentication is on, and what it needs.

import (
	"net"
	"strings"
)

// minTokenLen is the shortest token accepted: a token is a password that never
// needs typing, so a short one is only a weakness.
const minTokenLen = 16

// AuthEnabled reports whether gRPC callers must authenticate: --auth on, or --auth
// auto (the default) with the gRPC port reachable beyond loopback.
func (c Config) AuthEnabled() bool {
	switch c.Auth {
	case "on":
		return true
	case "off":
		return false
	}
	return !loopbackAddr(c.GRPCAddr)
}

// loopbackAddr reports whether a listen address reaches this host only: an IP of
// the loopback range or "localhost". An empty host listens on every interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c Config) authProblems() []string {
	var problems []string
	switch c.Auth {
	case "on", "off", "auto":
	default:
		problems = append(problems, "--auth "+quote(c.Auth)+" is not on, off or auto")
	}
	for name, token := range map[string]string{
		"TASKLOOM_SERVICE_TOKEN": c.ServiceToken, "TASKLOOM_WORKER_TOKEN": c.WorkerToken, "TASKLOOM_ADMIN_TOKEN": c.AdminToken,
	} {
		if token != "" && len(token) < minTokenLen {
			problems = append(problems, name+" must be at least 16 characters")
		}
	}
	if c.AuthEnabled() {
		if c.WorkerToken == "" {
			problems = append(problems, "authentication is on (--auth "+c.Auth+", --grpc-addr "+c.GRPCAddr+
				"): set TASKLOOM_WORKER_TOKEN, or no worker can connect (or --auth off on a private network)")
		}
		if c.ServiceToken == "" && c.AdminToken == "" {
			problems = append(problems, "authentication is on: set TASKLOOM_SERVICE_TOKEN (for the gateway) or TASKLOOM_ADMIN_TOKEN (to create API keys), or no client can connect")
		}
	}
	return problems
}

func quote(s string) string { return `"` + s + `"` }

// maskSecret prints a secret as whether it is set, never its value.
func maskSecret(s string) string {
	if s == "" {
		return ""
	}
	return "***"
}
