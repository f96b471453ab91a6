// agent/agent_loop.h — the bounded agent loop the server runs for built-in (and MCP) tools: model -> tool calls
// -> run them (each with its timeout) -> results as tool messages -> model, at most max_steps model turns, every
// step reported as a typed event (for SSE and the web chat's cards).
// defines: AgentEventKind, AgentEvent, AgentOptions, AgentResult, AgentLoop
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/builtin_tools.h"
#include "agent/constraint.h"
#include "agent/quote_search.h"
#include "agent/tools.h"
#include "infer/engine.h"
#include "tokenizer/chat_template.h"

namespace baleine::agent {

enum class AgentEventKind {
  ModelDelta,  // streamed text of the current model turn (raw, markers included)
  ModelTurn,   // a model turn finished: reasoning, content, tool calls
  ToolCall,    // a tool is about to run
  ToolResult,  // its result (or error / timeout)
  Final,       // the answer (the last model turn had no tool calls)
  Error,
};
const char* agent_event_kind_name(AgentEventKind k);  // "model_delta", "model_turn", "tool_call", ...

struct AgentEvent {
  AgentEventKind kind = AgentEventKind::ModelDelta;
  int step = 0;                  // model turn index, from 0
  std::string text;              // ModelDelta: new text; ModelTurn/Final: content; Error: message
  std::string reasoning;         // ModelTurn/Final
  ToolCall call;                 // ToolCall/ToolResult
  nlohmann::json result;         // ToolResult: the tool's content
  bool tool_error = false;       // ToolResult: error or timeout
  std::vector<nlohmann::json> citations;  // ToolResult (retrieval)
  double seconds = 0;            // ToolResult: run time; ModelTurn: generation time
  std::string finish_reason;     // ModelTurn/Final
};

struct AgentOptions {
  ChatFormat format = ChatFormat::DeepSeekV3;
  bool thinking = true;                     // hybrid format: think (Responses' reasoning.effort "none" turns it off)
  GenerationParams params;                  // per model turn (constraint is set by the loop)
  int max_steps = 4;                        // model turns at most; the last one may not call tools
  ToolChoice first_choice;                  // tool_choice of the first turn (auto by default)
  bool parallel_tool_calls = true;
  size_t max_result_bytes = 16384;          // a tool result longer than this is cut (the model's context is small)
  // Once a tool returned passages, every double-quoted span of the model's turns must copy the user's messages or
  // the tool results verbatim (agent/grounding.h).
  bool grounded_quotes = false;
  // The same, and each such quote is chosen whole: a search for the source span the model rates most likely
  // (agent/quote_search.h) instead of the mask's token-by-token greedy copy.
  bool quote_search = false;
  QuoteSearchOptions quote_search_options;
};

// A call of the last model turn when the loop stopped for the client: client-executed function tools (a
// RegisteredTool without `run`) are answered by the caller; server tools of that turn have their output here.
struct PendingCall {
  ToolCall call;
  bool client = false;   // the caller must supply the output
  std::string output;    // server tools: the tool message content
  bool tool_error = false;
};

struct AgentResult {
  // The conversation with every assistant and tool message appended (when the loop stopped for client calls: up to
  // the assistant message holding them; the tool messages of that turn are in pending_calls, in call order).
  std::vector<ChatMessage> messages;
  std::string content, reasoning;      // the final answer
  std::string finish_reason;           // stop | length | max_steps | cancelled | error | tool_calls (client calls)
  std::vector<PendingCall> pending_calls;  // finish_reason tool_calls
  std::vector<std::string> failed_calls;   // ids of calls whose tool failed or timed out
  std::vector<nlohmann::json> citations;
  int steps = 0;
  int quote_searches = 0, quote_expansions = 0;  // quote_search: quotes searched, model calls they took
  GenerationUsage usage;               // summed over turns (completion tokens: the quotes' tokens included)
};

// The pieces of one loop step, shared with SFT data rendering (rl/common.cpp) so training text is exactly what the
// loop shows the model. The prompt text of a model turn: the tools (per `choice`) in the system prompt, then the
// chat template with the generation prompt.
// thinking: the hybrid (V3.1) format's mode (R1 always thinks; other formats ignore it).
std::string agent_turn_prompt(ChatFormat format, const std::vector<ChatMessage>& conversation,
                              const std::vector<ToolFunction>& tools, const ToolChoice& choice, bool thinking = true);
// The assistant message a parsed turn leaves in the conversation: its content (reasoning dropped) and calls.
ChatMessage agent_history_message(const AssistantTurn& turn);
// The tool message a result becomes: its JSON text, cut past max_bytes.
ChatMessage agent_tool_message(const ToolResult& result, size_t max_bytes);

class AgentLoop {
 public:
  AgentLoop(Engine& engine, std::shared_ptr<const VocabIndex> vocab, const ToolRegistry& tools, AgentOptions options = {});
  ~AgentLoop();  // waits for tool calls that outlived their timeout
  // Runs to the answer. on_event may be empty; cancel (optional) stops between and inside model turns.
  AgentResult run(std::vector<ChatMessage> conversation, const std::function<void(const AgentEvent&)>& on_event = {},
                  const std::atomic<bool>* cancel = nullptr);

 private:
  ToolResult run_tool(const ToolCall& call, double* seconds);
  Engine& engine_;
  std::shared_ptr<const VocabIndex> vocab_;
  const ToolRegistry& tools_;
  AgentOptions options_;
  std::mutex mu_;
  std::vector<std::future<ToolResult>> abandoned_;  // timed-out calls still running
};

}  // namespace baleine::agent
