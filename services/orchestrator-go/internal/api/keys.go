package api

// The API key RPCs of OrchestratorService, served by internal/apikeys. Only the
// roles of policy's defaultRoles reach them (admins, the gateway, anyone with
// authentication off); the gateway lets only admin keys through to them.

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/apikeys"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
)

var errNoKeys = &errs.Error{Kind: errs.KindUnimplemented, Reason: pb.ErrorReason_ERROR_REASON_UNIMPLEMENTED, Message: "this orchestrator serves no API keys"}

// CreateAPIKey implements OrchestratorService.
func (o *Orchestrator) CreateAPIKey(ctx context.Context, req *pb.CreateAPIKeyRequest) (*pb.CreateAPIKeyResponse, error) {
	if o.keys == nil {
		return nil, toStatus(o.log, errNoKeys)
	}
	role := apikeys.Role(req.GetRole())
	if req.GetRole() == pb.APIKeyRole_API_KEY_ROLE_UNSPECIFIED {
		role = apikeys.RoleTenant
	}
	key, secret, err := o.keys.Create(ctx, req.GetTenant(), role, req.GetName())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	o.log.Info("api key created", "key_id", key.ID, "tenant", key.Tenant, "role", keyRoleToProto(key.Role).String(), "by", principalOf(ctx).Role.String())
	return &pb.CreateAPIKeyResponse{ApiKey: keyToProto(key), Secret: secret}, nil
}

// ListAPIKeys implements OrchestratorService.
func (o *Orchestrator) ListAPIKeys(ctx context.Context, req *pb.ListAPIKeysRequest) (*pb.ListAPIKeysResponse, error) {
	if o.keys == nil {
		return nil, toStatus(o.log, errNoKeys)
	}
	after, err := decodePageToken(keyPages, req.GetPageToken())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultKeyPageSize
	}
	keys, next, err := o.keys.List(ctx, req.GetTenant(), after, size, req.GetIncludeRevoked())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	resp := &pb.ListAPIKeysResponse{ApiKeys: make([]*pb.APIKey, len(keys)), NextPageToken: encodePageToken(keyPages, next)}
	for i, k := range keys {
		resp.ApiKeys[i] = keyToProto(k)
	}
	return resp, nil
}

// RevokeAPIKey implements OrchestratorService.
func (o *Orchestrator) RevokeAPIKey(ctx context.Context, req *pb.RevokeAPIKeyRequest) (*pb.RevokeAPIKeyResponse, error) {
	if o.keys == nil {
		return nil, toStatus(o.log, errNoKeys)
	}
	key, err := o.keys.Revoke(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	o.log.Info("api key revoked", "key_id", key.ID, "tenant", key.Tenant, "by", principalOf(ctx).Role.String())
	return &pb.RevokeAPIKeyResponse{ApiKey: keyToProto(key)}, nil
}

// VerifyAPIKey implements OrchestratorService.
func (o *Orchestrator) VerifyAPIKey(ctx context.Context, req *pb.VerifyAPIKeyRequest) (*pb.VerifyAPIKeyResponse, error) {
	if o.keys == nil {
		return nil, toStatus(o.log, errNoKeys)
	}
	key, err := o.keys.Verify(ctx, req.GetSecret())
	if e, ok := errs.As(err); ok && e.Kind == errs.KindUnauthenticated {
		// The caller is authenticated; the secret it asks about is what is unknown.
		// (UNAUTHENTICATED here would say the caller's own token is wrong.)
		return nil, toStatus(o.log, errs.NotFound(errs.ReasonAPIKeyNotFound, "no live API key has this secret"))
	}
	if err != nil {
		return nil, toStatus(o.log, err)
	}
	return &pb.VerifyAPIKeyResponse{ApiKey: keyToProto(key)}, nil
}

func keyToProto(k apikeys.Key) *pb.APIKey {
	out := &pb.APIKey{Id: k.ID, Tenant: k.Tenant, Role: keyRoleToProto(k.Role), Name: k.Name, Prefix: k.Prefix, CreatedAt: timestamppb.New(k.CreatedAt)}
	if k.Revoked() {
		out.RevokedAt = timestamppb.New(k.RevokedAt)
	}
	return out
}

// keyRoleToProto is an API key's role as the contracts spell it.
func keyRoleToProto(r apikeys.Role) pb.APIKeyRole { return pb.APIKeyRole(r) }
