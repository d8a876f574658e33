package config

import (
	"errors"
	"flag"
	"io"
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
