"""The socket, the JSON-RPC 2.0 envelope and the method registry."""
