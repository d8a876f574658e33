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
