package config

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
)

var tokens = map[string]string{
	"TASKLOOM_WORKER_TOKEN": "worker-secret-0123456789", "TASKLOOM_SERVICE_TOKEN": "service-secret-0123456789",
}

func TestAuthIsOnBeyondLoopbackAndOffOnItByDefault(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:50051": false, "[::1]:50051": false, "localhost:50051": false,
		"0.0.0.0:50051": true, ":50051": true, "10.1.2.3:50051": true,
	} {
		c, err := Load([]string{"--grpc-addr", addr}, env(tokens), io.Discard)
		if err != nil || c.AuthEnabled() != want {
			t.Errorf("%s: auth %v, %v; want %v", addr, c.AuthEnabled(), err, want)
		}
	}
	c, err := Load([]string{"--auth", "on"}, env(tokens), io.Discard)
	if err != nil || !c.AuthEnabled() {
		t.Fatalf("--auth on: %v, %v", c.AuthEnabled(), err)
	}
	c, err = Load([]string{"--grpc-addr", "0.0.0.0:1", "--auth", "off"}, env(nil), io.Discard)
	if err != nil || c.AuthEnabled() {
		t.Fatalf("--auth off: %v, %v", c.AuthEnabled(), err)
	}
}

func TestAuthNeedsItsTokensAndTakesThemOnlyFromFileOrEnvironment(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--grpc-addr", "0.0.0.0:1"}, want: "TASKLOOM_WORKER_TOKEN"},
		{args: []string{"--auth", "on"}, env: map[string]string{"TASKLOOM_WORKER_TOKEN": "worker-secret-0123456789"}, want: "TASKLOOM_SERVICE_TOKEN"},
		{args: []string{"--auth", "maybe"}, want: "--auth"},
		{env: map[string]string{"TASKLOOM_ADMIN_TOKEN": "short"}, want: "at least 16"},
		{args: []string{"--worker-token", "worker-secret-0123456789"}, want: "worker-token"},
	} {
		_, err := Load(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%v, %v) = %v, want mention of %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestTokensAreNeverPrinted(t *testing.T) {
	c, err := Load([]string{"--auth", "on"}, env(tokens), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	slog.New(slog.NewJSONHandler(&out, nil)).Info("starting", "config", c)
	for _, secret := range tokens {
		if strings.Contains(out.String(), secret) {
			t.Fatalf("a token was printed: %s", out.String())
		}
	}
	if !strings.Contains(out.String(), `"worker_token":"***"`) || !strings.Contains(out.String(), `"auth_enabled":true`) {
		t.Fatalf("printed %s", out.String())
	}
}
