// Package e2e holds idgate's end-to-end tests: the same requests through
// every front end (reverse proxy, Envoy ext_authz over gRPC and HTTP,
// nginx and Traefik/Caddy forward-auth) must get the same decisions, and
// a real nginx in front of idgate must enforce them. It has no code of
// its own.
package e2e
