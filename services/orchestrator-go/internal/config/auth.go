package config

// The authentication settings: when authentication is on, what it needs, and
// where its tokens come from.

import (
	"fmt"
	"net"
	"os"
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

// secretFromFile reads a secret from the file its _FILE variable names (fileVar, the
// path; empty: none). Setting both the variable and the file is an error, since one
// of them would be ignored; an unreadable file is one too. An empty file is an unset
// secret (Compose mounts optional secrets as empty files). Surrounding white space
// (the newline an editor adds) is not part of the secret.
func secretFromFile(s setting, value, fileVar string) (string, error) {
	if fileVar == "" {
		return "", nil
	}
	if value != "" {
		return "", fmt.Errorf("set %s or %s, not both", s.env(), s.fileEnv())
	}
	raw, err := os.ReadFile(fileVar)
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.fileEnv(), err)
	}
	return strings.TrimSpace(string(raw)), nil
}
