package tracing

import (
	"context"
	"testing"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestSettingsDefaultToTheOpenTelemetryDefaults(t *testing.T) {
	s, err := SettingsFromEnv(env(nil))
	if err != nil || s.Endpoint != "" || s.Ratio != 1 || s.ServiceName != DefaultServiceName {
		t.Fatalf("settings %+v, %v", s, err)
	}
	s, err = SettingsFromEnv(env(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_TRACES_SAMPLER_ARG": "0.1", "OTEL_SERVICE_NAME": "orch-2",
	}))
	if err != nil || s.Endpoint != "http://127.0.0.1:4317" || s.Ratio != 0.1 || s.ServiceName != "orch-2" {
		t.Fatalf("settings %+v, %v", s, err)
	}
}

func TestASamplerRatioOutsideZeroToOneIsRefused(t *testing.T) {
	for _, arg := range []string{"1.5", "-0.1", "ten"} {
		if _, err := SettingsFromEnv(env(map[string]string{"OTEL_TRACES_SAMPLER_ARG": arg})); err == nil {
			t.Errorf("ratio %q accepted", arg)
		}
	}
}

func TestWithoutAnEndpointNothingIsInstalled(t *testing.T) {
	tr, err := Start(context.Background(), Settings{Ratio: 1, ServiceName: DefaultServiceName})
	if err != nil || tr != nil || tr.Provider() != nil || tr.Shutdown(context.Background()) != nil {
		t.Fatalf("off: %v, %v", tr, err)
	}
}
