package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != "127.0.0.1:50051" || c.HTTPAddr != "127.0.0.1:9101" || c.MaxQueue != 100_000 ||
		c.DefaultTimeout != 300*time.Second || c.LeaseTTL != 15*time.Second || c.MaxAttempts != 3 {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestEnvThenFlagsOverride(t *testing.T) {
	e := env(map[string]string{"TASKLOOM_GRPC_ADDR": "127.0.0.1:6000", "TASKLOOM_LEASE_TTL": "30s", "TASKLOOM_MAX_QUEUE": "7"})
	c, err := Load([]string{"--max-queue", "9"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != "127.0.0.1:6000" || c.LeaseTTL != 30*time.Second || c.MaxQueue != 9 {
		t.Fatalf("config = %+v", c)
	}
}

func TestInvalidSettingsAreRejected(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--log-level", "loud"}, want: "--log-level"},
		{args: []string{"--heartbeat-interval", "20s"}, want: "shorter than --lease-ttl"},
		{env: map[string]string{"TASKLOOM_LEASE_TTL": "soon"}, want: "TASKLOOM_LEASE_TTL"},
		{args: []string{"--max-attempts", "0"}, want: "--max-attempts"},
	} {
		_, err := Load(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%v, %v) err = %v, want mention of %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	_, err := Load([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "TASKLOOM_MAX_QUEUE") {
		t.Fatalf("err=%v usage=%q", err, out.String())
	}
	// Secrets are no flags, yet --help names them: deploy files are checked against it.
	for _, name := range []string{"TASKLOOM_SERVICE_TOKEN", "TASKLOOM_WORKER_TOKEN", "TASKLOOM_ADMIN_TOKEN"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("--help does not name %s", name)
		}
	}
}

func TestStoreRetentionAndLimits(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil || c.Store != "bolt" || c.Retention != 168*time.Hour || len(c.AgentLimits) != 0 {
		t.Fatalf("defaults = %+v, %v", c, err)
	}
	e := env(map[string]string{"TASKLOOM_AGENT_LIMIT": "assistant=100", "TASKLOOM_STORE": "redis"})
	c, err = Load([]string{"--agent-limit", "coder=2,writer=3", "--provider-limit", "simulated=500", "--provider-limit", "openai=7",
		"--redis-url", "redis://:secret@127.0.0.1:6380/1", "--retention", "1h"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != "redis" || c.Retention != time.Hour || c.AgentLimits["assistant"] != 100 || c.AgentLimits["coder"] != 2 ||
		c.AgentLimits["writer"] != 3 || c.ProviderLimits["simulated"] != 500 || c.ProviderLimits["openai"] != 7 {
		t.Fatalf("config = %+v", c)
	}
	if got := maskURL(c.RedisURL); strings.Contains(got, "secret") {
		t.Fatalf("password not masked: %s", got)
	}
	for _, args := range [][]string{{"--store", "sqlite"}, {"--agent-limit", "x=0"}, {"--agent-limit", "noequals"}, {"--retention", "0s"}} {
		if _, err := Load(args, env(nil), io.Discard); err == nil {
			t.Errorf("Load(%v) accepted", args)
		}
	}
}

func TestLayersDefaultsThenFileThenEnvThenFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "o.yaml")
	yaml := "gateway:\n  http_addr: 0.0.0.0:1\norchestrator:\n  max_queue: 5\n  lease_ttl: 20s\n  retention: 2h\n  agent_limit:\n    writer: 2\n    coder: 4\n  memory_limit: 512MiB\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{"TASKLOOM_CONFIG": file, "TASKLOOM_LEASE_TTL": "30s", "TASKLOOM_MAX_QUEUE": "6", "TASKLOOM_AGENT_LIMIT": "coder=5"})
	c, err := Load([]string{"--max-queue", "9"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != file || c.MaxQueue != 9 || c.LeaseTTL != 30*time.Second || c.Retention != 2*time.Hour ||
		c.AgentLimits["writer"] != 2 || c.AgentLimits["coder"] != 5 || c.MemoryLimit != 512<<20 || c.HTTPAddr != "127.0.0.1:9101" {
		t.Fatalf("config = %+v", c)
	}
	// --config on the command line names the file as well.
	c, err = Load([]string{"--config", file}, env(nil), io.Discard)
	if err != nil || c.MaxQueue != 5 || c.LeaseTTL != 20*time.Second {
		t.Fatalf("config = %+v, %v", c, err)
	}
}

func TestFileErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{
		"orchestrator:\n  lease_tl: 3s\n":             `orchestrator.lease_tl is not a setting`,
		"orchestrator:\n  max_queue: many\n":          "orchestrator.max_queue: not an integer",
		"orchestrator:\n  retention: [1, 2]\n":        "orchestrator.retention: expected a value",
		"orchestrator:\n  memory_limit: 12 parsecs\n": "orchestrator.memory_limit: not a size",
		"orchestrater:\n  max_queue: 1\n":             `"orchestrater" is not a section`,
	} {
		file := filepath.Join(dir, "o.yaml")
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load([]string{"--config", file}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", body, err, want)
		}
	}
	if _, err := Load([]string{"--config", filepath.Join(dir, "missing.yaml")}, env(nil), io.Discard); err == nil {
		t.Error("a missing file was accepted")
	}
}

func TestMemoryLimitSizes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "2GiB": 2 << 30, "1 GB": 1e9, "64KiB": 64 << 10} {
		c, err := Load([]string{"--memory-limit", in}, env(nil), io.Discard)
		if err != nil || c.MemoryLimit != want {
			t.Errorf("%q = %d, %v; want %d", in, c.MemoryLimit, err, want)
		}
	}
	if _, err := Load(nil, env(map[string]string{"TASKLOOM_MEMORY_LIMIT": "-1"}), io.Discard); err == nil {
		t.Error("a negative limit was accepted")
	}
}

func TestLeaderElectionSettings(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil || c.LeaderLeaseTTL != 5*time.Second || c.LeaderRenewInterval != time.Second || c.AdvertiseAddr != "" {
		t.Fatalf("defaults = %+v, %v", c, err)
	}
	e := env(map[string]string{"TASKLOOM_LEADER_LEASE_TTL": "8s", "TASKLOOM_ADVERTISE_ADDR": "orch-a:50051"})
	c, err = Load([]string{"--leader-renew-interval", "2s"}, e, io.Discard)
	if err != nil || c.LeaderLeaseTTL != 8*time.Second || c.LeaderRenewInterval != 2*time.Second || c.Advertised("0.0.0.0:50051") != "orch-a:50051" {
		t.Fatalf("config = %+v, %v", c, err)
	}
	if _, err := Load([]string{"--leader-lease-ttl", "3s", "--leader-renew-interval", "2s"}, env(nil), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--leader-renew-interval must be at most half of --leader-lease-ttl") {
		t.Fatalf("a renewal slower than half the TTL: %v", err)
	}
}

func TestAdvertisedAddressNamesTheHostForAWildcardListener(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	c := Defaults()
	for listening, want := range map[string]string{
		"127.0.0.1:50051": "127.0.0.1:50051", "0.0.0.0:50051": host + ":50051", "[::]:7000": host + ":7000", ":9": host + ":9",
	} {
		if got := c.Advertised(listening); got != want {
			t.Errorf("Advertised(%q) = %q, want %q", listening, got, want)
		}
	}
}

// Profiling is off by default, and on a non-loopback HTTP address only with
// --profiling-allow-remote, whichever layer sets it.
func TestProfilingIsOffByDefaultAndLoopbackUnlessAllowed(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil || c.Profiling || c.ProfilingAllowRemote {
		t.Fatalf("defaults: profiling=%v allow_remote=%v err=%v", c.Profiling, c.ProfilingAllowRemote, err)
	}
	for _, tc := range []struct {
		args    []string
		env     map[string]string
		refused bool
	}{
		{args: []string{"--profiling"}},
		{args: []string{"--profiling", "--http-addr", "[::1]:9101"}},
		{args: []string{"--profiling", "--http-addr", "localhost:9101"}},
		{env: map[string]string{"TASKLOOM_PROFILING": "true", "TASKLOOM_HTTP_ADDR": "0.0.0.0:9101"}, refused: true},
		{args: []string{"--profiling", "--http-addr", ":9101"}, refused: true},
		{args: []string{"--profiling", "--http-addr", "10.1.2.3:9101"}, refused: true},
		{args: []string{"--profiling", "--profiling-allow-remote", "--http-addr", ":9101"}},
		{args: []string{"--http-addr", "0.0.0.0:9101"}},
	} {
		c, err := Load(tc.args, env(tc.env), io.Discard)
		if tc.refused {
			if err == nil || !strings.Contains(err.Error(), "--profiling-allow-remote") {
				t.Errorf("Load(%v, %v) err = %v, want a refusal naming --profiling-allow-remote", tc.args, tc.env, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Load(%v, %v) err = %v", tc.args, tc.env, err)
		}
		if want := len(tc.args) > 0 && tc.args[0] == "--profiling"; c.Profiling != want {
			t.Errorf("Load(%v) profiling = %v, want %v", tc.args, c.Profiling, want)
		}
	}
	if _, err := Load([]string{"--profiling=maybe"}, env(nil), io.Discard); err == nil {
		t.Error("--profiling=maybe accepted")
	}
}
