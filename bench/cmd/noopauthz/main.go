// Command noopauthz is the benchmark's ext_authz baseline: an Envoy
// ext_authz gRPC server (envoy.service.auth.v3.Authorization) whose Check
// allows every request without looking at it.
//
// Its answer is an empty OkHttpResponse. With -shaped it has the shape of
// idgate's answer for an allowed request with a verified token and
// Envoy's x-request-id (see allowed in package extauthz) instead: an
// identity header for the upstream request, the token's header to remove,
// and x-request-id for the client, each with append false and
// OVERWRITE_IF_EXISTS_OR_ADD. Envoy needs those to pass an identity on;
// with them the load generator decodes the same bytes from both servers,
// so that a comparison measures deciding, not the size of the answer.
// Either answer is built once and sent as it is: the server does no work
// per call.
package main

import (
	"context"
	"flag"
	"log"
	"net"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type allowAll struct {
	authv3.UnimplementedAuthorizationServer
	answer *authv3.CheckResponse
}

func (s allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.answer, nil
}

// answer returns the allowing answer, shaped as idgate's.
func answer() *authv3.CheckResponse {
	overwrite := func(name, value string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: name, Value: value},
			Append:       wrapperspb.Bool(false),
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}
	}
	const id = "5f0c8e4a-7a8f-4c1e-9d2b-3a6f1e0b9c47" // Envoy's, which idgate keeps
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{
				overwrite("x-user-oid", "77777777-0000-0000-0000-000000000000"),
			},
			HeadersToRemove:      []string{"authorization"},
			ResponseHeadersToAdd: []*corev3.HeaderValueOption{overwrite("x-request-id", id)},
		}},
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18085", "address to listen on")
	shaped := flag.Bool("shaped", false, "answer as idgate answers an allowed request, not with an empty OkHttpResponse")
	flag.Parse()
	ans := &authv3.CheckResponse{
		Status:       &rpcstatus.Status{},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}
	if *shaped {
		ans = answer()
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, allowAll{answer: ans})
	log.Fatal(gs.Serve(ln))
}
