// A real MCP server over stdio, built with the official @modelcontextprotocol/sdk, for the C++ MCP client test.
// Tools: add (numbers), slow (sleeps; for timeouts), fail (returns isError), echo_env (stderr noise + text).
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const server = new McpServer({ name: "baleine-test-server", version: "1.0.0" });

server.registerTool(
  "add",
  { description: "Adds two numbers", inputSchema: { a: z.number(), b: z.number() } },
  async ({ a, b }) => ({ content: [{ type: "text", text: String(a + b) }] }),
);
server.registerTool(
  "slow",
  { description: "Answers after ms milliseconds", inputSchema: { ms: z.number().int() } },
  async ({ ms }) => {
    await new Promise((r) => setTimeout(r, ms));
    return { content: [{ type: "text", text: `slept ${ms}` }] };
  },
);
server.registerTool(
  "fail",
  { description: "Always fails", inputSchema: {} },
  async () => ({ isError: true, content: [{ type: "text", text: "this tool always fails" }] }),
);
server.registerTool(
  "shout",
  { description: "Upper-cases a text", inputSchema: { text: z.string() } },
  async ({ text }) => {
    process.stderr.write("shouting on stderr\n");
    return { content: [{ type: "text", text: text.toUpperCase() }] };
  },
);

await server.connect(new StdioServerTransport());
