// server/server.h — `baleine serve`: the OpenAI/DeepSeek-compatible HTTP API and the web chat over one Engine.
// HTTP threads (cpp-httplib) parse and validate requests into GenerationRequests and only ever talk to the engine
// through submit() and the handles; the engine thread owns the model.
// defines: ServerOptions, Server
#pragma once
#include <functional>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent_loop.h"
#include "agent/constraint.h"
#include "agent/embeddings.h"
#include "agent/retrieval.h"
#include "agent/stores.h"
#include "infer/engine.h"
#include "infer/image_engine.h"
#include "server/mcp_hub.h"
#include "server/metrics.h"
#include "server/openai_api.h"
#include "server/store.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace baleine::server {

class GuardedHttpServer;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                    // 0: any free port (see Server::port())
  std::string db_path = ":memory:";   // cmd_serve defaults to default_db_path()
  bool api_keys_required = false;     // refuse unauthenticated requests even when no key exists yet
  std::string cors_origin;            // empty: no CORS headers (also the one cross-origin page allowed to POST)
  size_t max_body_bytes = 4 << 20;
  int http_threads = 128;             // connections served at once (each stream holds one); more get 503
  int max_connections_per_client = 48;  // per peer address; more get 429
  double header_timeout_s = 10, body_timeout_s = 30;  // whole request line + headers, whole body
  std::vector<std::string> allowed_hosts;  // Host names answered besides localhost (loopback bind) or all (others)
  int64_t default_rpm = 0, default_tpm = 0;  // per-key limits when a key has none (0: unlimited)
  int64_t default_max_tokens = 4096;
  double drain_timeout_s = 120;
  std::string model_id = "baleine";   // the real model id, served next to deepseek-chat / deepseek-reasoner
  ChatFormat format = ChatFormat::DeepSeekV3;
  PriceTable prices;
  bool web = true;                    // serve the web chat at /
  bool grounded_quotes = false;        // agent loop: quoted spans after a search copy the sources (agent/grounding.h)
  bool quote_search = false;           // and each is chosen whole by a search (agent/quote_search.h)
  std::string mcp_config;             // JSON file of stdio MCP servers ({"mcpServers": {...}}, see mcp_hub.h)
};

class Server {
 public:
  Server(std::shared_ptr<Engine> engine, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves POST /v1/images/generations with this Janus-Pro worker under `model_id` (call before bind()).
  void set_image_engine(std::shared_ptr<ImageEngine> images, std::string model_id);
  void bind();          // throws baleine::Error when the address cannot be bound
  int port() const { return port_; }
  void run();           // serves until stop(); returns after the listener closed
  // Refuses new generations (503), waits for in-flight ones up to drain_timeout_s, then stops the listener and
  // the engine. Safe from any thread except an HTTP handler.
  void drain_and_stop();

  struct Choice;   // one generated choice (chat_run.h)
  struct ChatRun;  // a submitted chat generation and its accounting (chat_run.h)
  struct Auth {
    int64_t key_id = 0, rpm = 0, tpm = 0;
  };

 private:
  Auth authenticate(const httplib::Request& req);
  void check_admission(const Auth& a);
  std::vector<int32_t> encode_prompt(const std::string& text) const;
  std::vector<std::shared_ptr<GenerationHandle>> submit_all(std::vector<GenerationRequest> reqs);
  std::shared_ptr<TokenConstraint> make_constraint(const ChatTask& task, const ModelRoute& route) const;
  // The prompt of a chat task (tools section, template, tokens), refused with 400 when it cannot fit; clamps
  // max_tokens to the room left and adds the stop tokens.
  std::vector<int32_t> chat_prompt(ChatTask& task) const;
  // Admission, submission and accounting of a chat task; endpoint names the ledger entry, id_prefix the answer's id.
  std::shared_ptr<ChatRun> start_chat(const Auth& auth, ChatTask& task, std::vector<int32_t> prompt,
                                      const char* endpoint, const char* id_prefix);
  void chat(const httplib::Request& req, httplib::Response& res);
  // Anthropic's Messages API under /anthropic (anthropic_api.cpp).
  void anthropic_messages(const httplib::Request& req, httplib::Response& res);
  void anthropic_count_tokens(const httplib::Request& req, httplib::Response& res);
  void completions(const httplib::Request& req, httplib::Response& res);
  void conversations_api(const httplib::Request& req, httplib::Response& res);
  void assistants_api(const httplib::Request& req, httplib::Response& res);  // agent_api.cpp
  void responses(const httplib::Request& req, httplib::Response& res);       // agent_api.cpp
  void embeddings(const httplib::Request& req, httplib::Response& res);      // embeddings_api.cpp
  void images(const httplib::Request& req, httplib::Response& res);          // images_api.cpp
  // Admission, queueing (503 when full, 400 naming `param` for a refused job), ledger and metrics of one image
  // worker job; a failed job is a 500 starting with `failure`.
  ImageResult run_image_job(const Auth& auth, const std::function<std::shared_ptr<ImageHandle>()>& submit,
                            const char* endpoint, const std::string& param, const std::string& failure);
  bool is_vision_chat(const json& body) const;                               // vision_chat_api.cpp
  void vision_chat(const Auth& auth, const json& body, httplib::Response& res);
  // /v1/embeddings' 'input' as token ids (validated against the tokenizer and limits; fuzzed).
 public:
  static std::vector<std::vector<int32_t>> embedding_inputs(const json& input, const Tokenizer& tok, const Limits& limits);
 private:
  // /v1/responses tools and items (responses_tools.cpp).
  struct ResponseTools {
    std::shared_ptr<agent::ToolRegistry> registry;
    std::shared_ptr<agent::DocumentStore> docs;                         // file_search over the assistant's documents
    std::map<std::string, std::pair<std::string, std::string>> mcp;      // tool name -> (server label, its own tool name)
    json mcp_lists = json::array();                                      // mcp_list_tools output items
  };
  ResponseTools response_tools(const json& tools, const agent::Assistant* assistant, const std::string& fallback_query = "");
  agent::ToolChoice response_tool_choice(const json& choice, const ResponseTools& tools) const;
  // /v1/responses' 'input' items, answering `pending` calls (validated; fuzzed).
 public:
  static std::vector<ChatMessage> response_input(const json& input, const json& pending);
 private:
  json response_output_items(const agent::AgentResult& r, const std::vector<ChatMessage>& added, const ResponseTools& tools) const;
  static json pending_calls_json(const std::vector<agent::PendingCall>& calls);
  void check_mcp_labels(const json& assistant_body) const;
  // /v1/chat/completions with mcp or built-in tools: the server runs the tool loop (agent_api.cpp).
 public:
  static bool has_server_tools(const json& body);
 private:
  void chat_with_server_tools(const Auth& auth, const json& body, httplib::Response& res);
  // Dense retrieval: vectors of an assistant document's chunks, computed by the engine (batched) and cached.
  void embed_document_if_hybrid(const agent::Assistant& a, const std::string& text);
  void warm_chunk_embeddings(const std::vector<std::string>& chunks);
  agent::Embedder retrieval_embedder();
  void routes();

  std::shared_ptr<Engine> engine_;
  std::shared_ptr<ImageEngine> images_;  // null: no image model
  std::string image_model_id_;
  ServerOptions opt_;
  std::unique_ptr<GuardedHttpServer> http_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<agent::AssistantStore> assistants_;  // /v1/assistants (own SQLite file next to db_path)
  std::unique_ptr<agent::ResponseStore> responses_;    // /v1/responses previous_response_id chains
  std::shared_ptr<const agent::VocabIndex> vocab_;  // token bytes for grammar constraints (built once)
  std::shared_ptr<agent::EmbeddingCache> embed_cache_;  // document chunk vectors (dense retrieval)
  McpHub mcp_;                                          // MCP servers from --mcp-config
  std::vector<ModelRoute> routes_;
  std::vector<int32_t> stop_tokens_;
  size_t max_token_bytes_ = 0;  // the longest token's bytes: a cheap lower bound on a text's token count
  Limits limits_;
  Metrics metrics_;
  RateLimiter limiter_;
  std::atomic<bool> draining_{false};
  int port_ = 0;
};

}  // namespace baleine::server
