"""The MCP server (`opsrunner mcp`): the commands an agent needs, as MCP tools, under the same policy.

- guard.py: what every call passes through: the masker, the daily-memory record, the client's name.
- memoryfiles.py: the ai-memory files as resources (names validated) and the bounded text search.
- ops.py: the tools' work, calling the same Python the CLI calls (never the opsrunner command).
- changes.py: the mutations under policy: the restart budget, plans, approvals, apply.
- server.py: the MCPServer with its tools, annotations and resources; stdio and streamable HTTP (token).
"""
