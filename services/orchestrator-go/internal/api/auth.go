package api

// Authentication and authorization of the gRPC API. A call presents
// `authorization: Bearer <token>`: the worker token, the gateway's service token,
// the admin token or an API key's secret (internal/apikeys). authenticated() wraps
// each service so that the caller is known (its Principal, in the call's context)
// before a request is even decoded, and policy says which roles may make which
// call. With authentication off every call is anonymous and may do anything, as
// before authentication existed (--auth: on beyond loopback by default). Tokens
// are compared in constant time and never logged; health and reflection stay open.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/apikeys"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
)

// Role is what a caller is.
type Role int

// Roles.
const (
	// RoleAnonymous: authentication is off; the call acts for whatever tenant it names.
	RoleAnonymous Role = iota
	// RoleTenant: a tenant's API key; it acts for that tenant only.
	RoleTenant
	// RoleAdmin: an admin API key or the admin token; it acts for any tenant and
	// manages API keys.
	RoleAdmin
	// RoleService: the gateway; it acts for the tenant each request names.
	RoleService
	// RoleWorker: an agent worker; it serves WorkerHubService and submits, reads and
	// cancels the child tasks its agents start.
	RoleWorker
)

var roleNames = map[Role]string{RoleAnonymous: "anonymous", RoleTenant: "tenant", RoleAdmin: "admin", RoleService: "service", RoleWorker: "worker"}

func (r Role) String() string { return roleNames[r] }

// Principal is who makes a call.
type Principal struct {
	Role Role
	// Tenant is a tenant key's tenant (an admin key's own, where its tasks go).
	Tenant string
	// KeyID names the API key used, if any.
	KeyID string
}

type principalKey struct{}

// principalOf returns the call's principal; a call that was not authenticated (a
// handler called directly, in tests) is anonymous.
func principalOf(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// Auth authenticates calls. Build it with NewAuth.
type Auth struct {
	enabled bool
	// SHA-256 digests of the static tokens (zero when unset): equal lengths make
	// the constant-time comparison meaningful.
	service, worker, admin [sha256.Size]byte
	keys                   *apikeys.Service
}

// AuthConfig configures NewAuth; empty tokens are not accepted from anyone.
type AuthConfig struct {
	Enabled                               bool
	ServiceToken, WorkerToken, AdminToken string
	Keys                                  *apikeys.Service
}

// NewAuth returns the authenticator of the configuration.
func NewAuth(c AuthConfig) *Auth {
	a := &Auth{enabled: c.Enabled, keys: c.Keys}
	for digest, token := range map[*[sha256.Size]byte]string{&a.service: c.ServiceToken, &a.worker: c.WorkerToken, &a.admin: c.AdminToken} {
		if token != "" {
			*digest = sha256.Sum256([]byte(token))
		}
	}
	return a
}

// authenticate says who the call's credentials name.
func (a *Auth) authenticate(ctx context.Context) (Principal, error) {
	if !a.enabled {
		return Principal{Role: RoleAnonymous}, nil
	}
	token := bearer(ctx)
	if token == "" {
		return Principal{}, errs.Unauthenticated("credentials are required: send the metadata `authorization: Bearer <token or API key>`")
	}
	digest := sha256.Sum256([]byte(token))
	for role, want := range map[Role]*[sha256.Size]byte{RoleService: &a.service, RoleWorker: &a.worker, RoleAdmin: &a.admin} {
		if *want != ([sha256.Size]byte{}) && subtle.ConstantTimeCompare(digest[:], want[:]) == 1 {
			return Principal{Role: role}, nil
		}
	}
	if a.keys == nil {
		return Principal{}, errs.Unauthenticated("the token is not valid")
	}
	key, err := a.keys.Verify(ctx, token)
	if err != nil {
		return Principal{}, err
	}
	role := RoleTenant
	if key.Role == apikeys.RoleAdmin {
		role = RoleAdmin
	}
	return Principal{Role: role, Tenant: key.Tenant, KeyID: key.ID}, nil
}

func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if scheme, token, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(token)
		}
	}
	return ""
}

// Who may call what. A method missing from policy is for the trusted roles only
// (defaultRoles): a new RPC is closed to tenant keys and workers until it says how
// it scopes them.
var (
	defaultRoles = roles(RoleAnonymous, RoleAdmin, RoleService)
	tenantRoles  = roles(RoleAnonymous, RoleAdmin, RoleService, RoleTenant)
	childRoles   = roles(RoleAnonymous, RoleAdmin, RoleService, RoleTenant, RoleWorker)
	policy       = map[string]map[Role]bool{
		"SubmitTask": childRoles, "GetTask": childRoles, "CancelTask": childRoles, "WatchTask": childRoles,
		"SubmitTasks": tenantRoles, "ListTasks": tenantRoles, "ListAgents": tenantRoles,
		"SubmitWorkflow": tenantRoles, "GetWorkflow": tenantRoles, "CancelWorkflow": tenantRoles,
		"WatchWorkflow": tenantRoles, "ListWorkflows": tenantRoles,
		"Session": roles(RoleAnonymous, RoleWorker),
	}
)

func roles(rs ...Role) map[Role]bool {
	m := map[Role]bool{}
	for _, r := range rs {
		m[r] = true
	}
	return m
}

// admit authenticates a call of the method and checks that its role may make it.
func (a *Auth) admit(ctx context.Context, method string) (context.Context, error) {
	p, err := a.authenticate(ctx)
	if err != nil {
		return nil, toStatus(nil, err)
	}
	allowed, ok := policy[method]
	if !ok {
		allowed = defaultRoles
	}
	if !allowed[p.Role] {
		return nil, toStatus(nil, errs.PermissionDenied("a caller with the %s role may not call %s", p.Role, method))
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

// authenticated returns a copy of desc whose handlers admit each call first.
func authenticated(desc *grpc.ServiceDesc, a *Auth) *grpc.ServiceDesc {
	g := *desc
	g.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		handler, name := m.Handler, m.MethodName
		m.Handler = func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			ctx, err := a.admit(ctx, name)
			if err != nil {
				return nil, err
			}
			return handler(srv, ctx, dec, in)
		}
		g.Methods[i] = m
	}
	g.Streams = make([]grpc.StreamDesc, len(desc.Streams))
	for i, s := range desc.Streams {
		handler, name := s.Handler, s.StreamName
		s.Handler = func(srv any, stream grpc.ServerStream) error {
			ctx, err := a.admit(stream.Context(), name)
			if err != nil {
				return err
			}
			return handler(srv, streamWithContext{stream, ctx})
		}
		g.Streams[i] = s
	}
	return &g
}

type streamWithContext struct {
	grpc.ServerStream
	ctx context.Context
}

func (s streamWithContext) Context() context.Context { return s.ctx }
