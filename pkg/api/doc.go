// Package api holds the wire types shared by the controller, the agent and the
// Go SDK: resources, error codes and the error envelope. The OpenAPI document
// for the whole tenant and operator API lives next to it in openapi.yaml.
package api
