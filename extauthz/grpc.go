package extauthz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/idgate/idgate/engine"
	"github.com/idgate/idgate/httpfront"
	"github.com/idgate/idgate/request"
)

// ServiceName is the gRPC service Envoy calls, also reported SERVING by
// the health service.
const ServiceName = "envoy.service.auth.v3.Authorization"

// Server answers Envoy's ext_authz Check calls with the engine's
// decisions. It implements authv3.AuthorizationServer.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	eng  *engine.Engine
	opts Options
}

// NewServer returns a Server that decides with eng.
func NewServer(eng *engine.Engine, opts Options) *Server {
	return &Server{eng: eng, opts: opts.withDefaults()}
}

// NewGRPCServer returns a gRPC server that serves the Authorization
// service of s and the standard health service (grpc.health.v1.Health,
// SERVING for "" and ServiceName), with messages bounded by
// Options.MaxMessageBytes. extra options are added after idgate's own.
// Stop it with GracefulStop, or Stop when draining takes too long.
func NewGRPCServer(eng *engine.Engine, opts Options, extra ...grpc.ServerOption) *grpc.Server {
	s := NewServer(eng, opts)
	gs := grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.opts.MaxMessageBytes),
		grpc.MaxSendMsgSize(s.opts.MaxMessageBytes),
	}, extra...)...)
	authv3.RegisterAuthorizationServer(gs, s)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	return gs
}

// Check decides the request req describes. Every outcome is an OK call:
// an allowed request gets status OK and an OkHttpResponse with the
// upstream header changes; a denied one gets status UNAUTHENTICATED (401)
// or PERMISSION_DENIED (403) and a DeniedHttpResponse with the status,
// headers and body the client receives. A check that cannot be decided is
// denied the same way. Check never returns an error: Envoy may be set to
// fail open on errors.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, err error) {
	var id string
	defer func() {
		// A bug must not let a request through, nor take the gateway
		// down with it.
		if p := recover(); p != nil {
			s.opts.Logger.Error("ext_authz check panicked; request denied", "request_id", id, "panic", fmt.Sprint(p))
			resp, err = denial(http.StatusInternalServerError, "internal_error", id, nil), nil
		}
	}()
	a, aerr := checkAttributes(req, s.opts.TrustedProxies)
	if aerr != nil {
		id = request.RequestID(checkHeaders(req.GetAttributes().GetRequest().GetHttp()).Get(request.RequestIDHeader))
		return s.refuse(aerr, id), nil
	}
	// Envoy generates an x-request-id: keeping it ties the audit record
	// to Envoy's access log.
	id = request.RequestID(a.Header.Get(request.RequestIDHeader))
	a.RequestID = id
	a.Header.Set(request.RequestIDHeader, id)
	d := s.eng.Decide(ctx, a)
	if d.Blocks() {
		rec := newRecorder()
		httpfront.Deny(rec, a, d)
		return denial(rec.status, d.Reason, id, rec), nil
	}
	return allowed(a, d), nil
}

// refuse answers a check that cannot be decided.
func (s *Server) refuse(err error, id string) *authv3.CheckResponse {
	rec := newRecorder()
	if errors.Is(err, errCheckRequest) {
		s.opts.Logger.Warn("ext_authz check refused", "request_id", id, "err", err)
		httpfront.Error(rec, http.StatusForbidden, httpfront.InvalidCheckRequest, id)
		return denial(rec.status, httpfront.InvalidCheckRequest, id, rec)
	}
	httpfront.BadRequest(rec, err, id)
	return denial(rec.status, httpfront.BadRequestReason(err), id, rec)
}

// allowed is the answer for a request the engine lets through: the
// identity headers to set (overwriting any client copy), the headers to
// remove, the query parameters to remove when a query token is not
// forwarded, and the request id upstream and downstream.
func allowed(a *request.Attributes, d engine.Decision) *authv3.CheckResponse {
	c := d.Authn.Changes
	ok := &authv3.OkHttpResponse{
		HeadersToRemove:      headersToRemove(c),
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{overwrite(request.RequestIDHeader, a.RequestID)},
	}
	for _, h := range c.SetHeaders {
		ok.Headers = append(ok.Headers, overwrite(h.Name, h.Value))
	}
	ok.Headers = append(ok.Headers, overwrite(request.RequestIDHeader, a.RequestID))
	if c.RewriteQuery {
		ok.QueryParametersToRemove = removedParams(a.Query, c.Query)
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// denial is the answer for a refused request: status, with the headers
// and body rec recorded (nil for none).
func denial(status int, reason, id string, rec *recorder) *authv3.CheckResponse {
	code := codes.PermissionDenied
	if status == http.StatusUnauthorized {
		code = codes.Unauthenticated
	}
	dr := &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode(status)}}
	if rec != nil {
		names := make([]string, 0, len(rec.header))
		for name := range rec.header {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			for _, v := range rec.header[name] {
				dr.Headers = append(dr.Headers, overwrite(name, v))
			}
		}
		dr.Body = rec.body.String()
	} else {
		dr.Headers = []*corev3.HeaderValueOption{overwrite(request.RequestIDHeader, id)}
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(code), Message: reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: dr},
	}
}

// overwrite is a header that replaces every value of its name. Both the
// deprecated append=false and the append_action say so, since Envoy
// versions read one or the other, and an unset append_action means
// append.
func overwrite(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: strings.ToLower(name), Value: value},
		Append:       wrapperspb.Bool(false),
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// recorder is the http.ResponseWriter that httpfront writes a denial
// into, for the gRPC answer to carry exactly what the HTTP front ends
// send.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}
