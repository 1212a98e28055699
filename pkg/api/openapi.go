package api

import _ "embed"

// OpenAPIYAML is the OpenAPI 3 description of the whole HTTP API.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte
