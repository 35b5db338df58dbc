// Command mcpecho is a stdio MCP server of one tool, `echo`, in the Go standard library alone: the module
// tests/images/go_image.py serves from a GOPROXY file tree, so that a go:// workload builds with no network.
package main

import (
	"bufio"
	"encoding/json"
	"os"
)

type request struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

func result(method string, params json.RawMessage) (any, *map[string]any) {
	switch method {
	case "initialize":
		var asked struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		_ = json.Unmarshal(params, &asked)
		return map[string]any{
			"protocolVersion": asked.ProtocolVersion,
			"capabilities":    map[string]any{"tools": map[string]any{}},
			"serverInfo":      map[string]any{"name": "mcpecho", "version": "0.1.0"},
		}, nil
	case "ping":
		return map[string]any{}, nil
	case "tools/list":
		schema := map[string]any{
			"type":       "object",
			"properties": map[string]any{"text": map[string]any{"type": "string"}},
			"required":   []string{"text"},
		}
		tool := map[string]any{"name": "echo", "description": "Echo the text back.", "inputSchema": schema}
		return map[string]any{"tools": []any{tool}}, nil
	case "tools/call":
		var call struct {
			Arguments struct {
				Text string `json:"text"`
			} `json:"arguments"`
		}
		_ = json.Unmarshal(params, &call)
		text := map[string]any{"type": "text", "text": "echo: " + call.Arguments.Text}
		return map[string]any{"content": []any{text}, "isError": false}, nil
	}
	return nil, &map[string]any{"code": -32601, "message": "Method not found: " + method}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		if json.Unmarshal(in.Bytes(), &req) != nil || len(req.ID) == 0 {
			continue // a notification (or junk): nothing to answer
		}
		answer := map[string]any{"jsonrpc": "2.0", "id": req.ID}
		if value, failure := result(req.Method, req.Params); failure != nil {
			answer["error"] = *failure
		} else {
			answer["result"] = value
		}
		_ = out.Encode(answer)
	}
}
