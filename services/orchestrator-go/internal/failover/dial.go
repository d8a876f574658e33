// Package failover dials whichever of several orchestrators is the leader: one gRPC
// client connection over their addresses, balanced round robin among those whose
// health service says SERVING for the Taskloom service called. Only the leader does;
// a standby says NOT_SERVING (api.NewStandby), so calls go to the leader, and to the
// next one when it dies. The Go clients of the orchestrator (the load generator,
// the tests) dial through it; the Python ones do the same in taskloom.sdk.channel.
package failover

import (
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// Services a connection can follow the leader for, by their health-check names.
const (
	OrchestratorService = "taskloom.v1.OrchestratorService"
	WorkerHubService    = "taskloom.v1.WorkerHubService"
)

// serviceConfig balances over the backends whose health check of service passes.
func serviceConfig(service string) string {
	return fmt.Sprintf(`{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":%q}}`, service)
}

// Addresses splits a comma-separated list of host:port addresses.
func Addresses(list string) []string {
	var out []string
	for a := range strings.SplitSeq(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Dial returns a connection to the leader among addrs (a comma-separated list of
// host:port) for calls of service. One address is resolved by DNS, every record a
// candidate (a Compose alias or headless Service naming all the orchestrators);
// each of several is a candidate, its host name resolved when it is dialed.
// Without other options the connection is insecure (a private network).
func Dial(addrs, service string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	list := Addresses(addrs)
	if len(list) == 0 {
		return nil, fmt.Errorf("no orchestrator address in %q", addrs)
	}
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig(service)),
	}, opts...)
	if len(list) == 1 {
		return grpc.NewClient("dns:///"+list[0], opts...)
	}
	r := manual.NewBuilderWithScheme("taskloom-orchestrators")
	state := resolver.State{}
	for _, a := range list {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(state)
	return grpc.NewClient(r.Scheme()+":///orchestrators", append(opts, grpc.WithResolvers(r))...)
}
