package extauthz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
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
//
// Calls are handled by a pool of worker goroutines (streamWorkers), not a
// new goroutine each: a decision needs a deeper stack than a new
// goroutine starts with, and growing it on every call cost about a sixth
// of the server's CPU time. A call that finds every worker busy still
// gets a goroutine of its own.
func NewGRPCServer(eng *engine.Engine, opts Options, extra ...grpc.ServerOption) *grpc.Server {
	s := NewServer(eng, opts)
	gs := grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.opts.MaxMessageBytes),
		grpc.MaxSendMsgSize(s.opts.MaxMessageBytes),
		grpc.NumStreamWorkers(streamWorkers()),
	}, extra...)...)
	authv3.RegisterAuthorizationServer(gs, s)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	return gs
}

// streamWorkers is the number of goroutines that handle calls. A worker
// is busy from the moment a call is handed to it until its answer is
// queued, so a loaded server needs about as many as it has calls in
// flight: with fewer, the calls beyond them each start a goroutine and
// grow its stack again.
func streamWorkers() uint32 {
	return uint32(max(minStreamWorkers, 8*runtime.GOMAXPROCS(0)))
}

// minStreamWorkers is the least number of stream workers: idle ones cost
// a few kilobytes of stack each.
const minStreamWorkers = 64

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
	kept := true
	if v := a.Header[request.RequestIDHeader]; len(v) != 1 || v[0] != id {
		a.Header[request.RequestIDHeader] = []string{id}
		kept = false
	}
	d := s.eng.Decide(ctx, a)
	if d.Blocks() {
		rec := newRecorder()
		httpfront.Deny(rec, a, d)
		return denial(rec.status, d.Reason, id, rec), nil
	}
	return allowed(a, d, kept), nil
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
// forwarded, and the request id downstream, and upstream unless the
// request kept the one it came with (keptID).
func allowed(a *request.Attributes, d engine.Decision, keptID bool) *authv3.CheckResponse {
	c := d.Authn.Changes
	// One allocation for the response and its messages, one for the
	// header options: this answer is built for every allowed request.
	ans := &okAnswer{}
	ok := &ans.ok
	ok.HeadersToRemove = headersToRemove(c)
	n := len(c.SetHeaders)
	if !keptID {
		n++
	}
	hs := newOverwrites(n + 1)
	for _, h := range c.SetHeaders {
		hs.add(h.Name, h.Value)
	}
	if !keptID {
		hs.add(requestIDKey, a.RequestID)
	}
	hs.add(requestIDKey, a.RequestID)
	ok.Headers = hs.list[:n:n]
	ok.ResponseHeadersToAdd = hs.list[n:]
	if c.RewriteQuery {
		ok.QueryParametersToRemove = removedParams(a.Query, c.Query)
	}
	ans.wrap.OkResponse = ok
	ans.resp.Status = &ans.status // code OK
	ans.resp.HttpResponse = &ans.wrap
	return &ans.resp
}

// requestIDKey is request.RequestIDHeader in lower case, as Envoy wants
// header names.
const requestIDKey = "x-request-id"

// okAnswer holds an allowing CheckResponse and the messages it points
// to, so that they are allocated together.
type okAnswer struct {
	resp   authv3.CheckResponse
	status rpcstatus.Status
	wrap   authv3.CheckResponse_OkResponse
	ok     authv3.OkHttpResponse
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
		n := 0
		for name, vs := range rec.header {
			names = append(names, name)
			n += len(vs)
		}
		slices.Sort(names)
		hs := newOverwrites(n)
		for _, name := range names {
			for _, v := range rec.header[name] {
				hs.add(name, v)
			}
		}
		dr.Headers = hs.list
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
	hs := newOverwrites(1)
	hs.add(name, value)
	return hs.list[0]
}

// overwrites builds a list of header options that overwrite (see
// overwrite), allocated together.
type overwrites struct {
	list []*corev3.HeaderValueOption
	free []overwriteOption
}

// overwriteOption is one option of overwrites with the messages it
// points to.
type overwriteOption struct {
	opt    corev3.HeaderValueOption
	header corev3.HeaderValue
	append wrapperspb.BoolValue // false
}

// newOverwrites returns an overwrites with room for n options.
func newOverwrites(n int) *overwrites {
	return &overwrites{list: make([]*corev3.HeaderValueOption, 0, n), free: make([]overwriteOption, n)}
}

// add appends an option that sets name (lower-cased) to value.
func (o *overwrites) add(name, value string) {
	if len(o.free) == 0 {
		o.free = make([]overwriteOption, 1)
	}
	x := &o.free[0]
	o.free = o.free[1:]
	x.header.Key, x.header.Value = strings.ToLower(name), value
	x.opt.Header = &x.header
	x.opt.Append = &x.append
	x.opt.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	o.list = append(o.list, &x.opt)
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
