package config

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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

func TestTokensAreReadFromTheFilesTheirFileVariablesName(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	worker := write("worker", "worker-secret-from-file-0123\n")
	c, err := Load([]string{"--auth", "on"}, env(map[string]string{
		"TASKLOOM_WORKER_TOKEN_FILE": worker, "TASKLOOM_SERVICE_TOKEN": "service-secret-0123456789",
	}), io.Discard)
	if err != nil || c.WorkerToken != "worker-secret-from-file-0123" || c.ServiceToken != "service-secret-0123456789" {
		t.Fatalf("Load = %q, %q, %v", c.WorkerToken, c.ServiceToken, err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"TASKLOOM_WORKER_TOKEN_FILE": worker, "TASKLOOM_WORKER_TOKEN": "worker-secret-0123456789"}, "not both"},
		{map[string]string{"TASKLOOM_ADMIN_TOKEN_FILE": filepath.Join(dir, "missing")}, "TASKLOOM_ADMIN_TOKEN_FILE"},
		// An empty file is no token: authentication on still needs one.
		{map[string]string{"TASKLOOM_WORKER_TOKEN_FILE": write("blank", " \n"), "TASKLOOM_AUTH": "on"}, "set TASKLOOM_WORKER_TOKEN"},
		{map[string]string{"TASKLOOM_ADMIN_TOKEN_FILE": write("short", "short\n")}, "at least 16"},
	} {
		_, err := Load(nil, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%v) = %v, want mention of %q", tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "worker-secret") {
			t.Errorf("a token was printed: %v", err)
		}
	}
}

func TestHelpNamesEachSecretsFileVariable(t *testing.T) {
	var out bytes.Buffer
	if _, err := Load([]string{"--help"}, env(nil), &out); err == nil {
		t.Fatal("--help returned no error")
	}
	for _, name := range []string{"TASKLOOM_SERVICE_TOKEN_FILE", "TASKLOOM_WORKER_TOKEN_FILE", "TASKLOOM_ADMIN_TOKEN_FILE"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("--help does not name %s:\n%s", name, out.String())
		}
	}
}
