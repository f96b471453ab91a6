// baleine serve [--model PATH] [--host H] [--port P] [--db FILE] ...: the OpenAI/DeepSeek-compatible API and the
// web chat. SIGINT/SIGTERM drain: new requests get 503, running ones finish, then the process exits.
#include <fmt/format.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <chrono>
#include <thread>
#include <algorithm>
#include <vector>

#include "apps/baleine/command.h"
#include "apps/baleine/model_files.h"
#include "core/check.h"
#include "infer/engine.h"
#include "infer/image_engine.h"
#include "models/janus.h"
#include "models/default_model.h"
#include "models/model.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

namespace baleine::app {
namespace {

std::atomic<int> g_signal{0};

struct ServeArgs {
  std::string model, prices, chat_format = "auto", model_id;
  std::string image_model, image_model_id = "janus-pro";
  ImageEngineOptions images;
  server::ServerOptions server;
  EngineOptions engine;
};

// The chat format a tokenizer was made for, from its marker tokens.
// "auto": the format the model names (tokenizer_config.json's "baleine_chat_format", written for models fine-tuned
// in one format such as the reasoning default model; else DeepSeek-V3.2 / V4 by model type, see
// chat_format_of_model); otherwise the tokenizer's special tokens decide (DeepSeek-V3 when nothing else matches).
ChatFormat guess_format(const Tokenizer& tok, const std::string& model_dir) {
  if (auto named = chat_format_of_model(model_dir, model_dir)) return *named;
  if (tok.token_id("<|im_start|>")) return ChatFormat::Qwen2;
  if (tok.token_id("<|start_header_id|>")) return ChatFormat::Llama3;
  return ChatFormat::DeepSeekV3;
}

// The identity of the weights for the disk cache: every file of the model (name, size, modification time), so
// blocks computed by other weights never match, and a re-exported model starts a fresh set of blocks.
uint64_t model_files_key(const std::string& model) {
  namespace fs = std::filesystem;
  std::vector<std::string> parts;
  auto add = [&](const fs::path& p) {
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    const auto time = fs::last_write_time(p, ec).time_since_epoch().count();
    parts.push_back(fmt::format("{}:{}:{}", fs::absolute(p).lexically_normal().string(), size, time));
  };
  if (fs::is_directory(model)) {
    for (const auto& e : fs::directory_iterator(model))
      if (e.is_regular_file()) add(e.path());
  } else {
    add(model);
  }
  std::sort(parts.begin(), parts.end());
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto& s : parts)
    for (unsigned char c : s + "\n") h = (h ^ c) * 0x100000001b3ull;
  return h;
}

int run_serve(ServeArgs& a) {
  if (a.server.db_path.empty()) a.server.db_path = server::default_db_path();
  if (a.model.empty()) a.model = default_model_path();  // the model committed in models/default
  BALEINE_CHECK(std::filesystem::exists(std::filesystem::path(a.model) / "tokenizer.json"),
                "{}: no tokenizer.json next to the model", a.model);
  // SIGINT/SIGTERM only set a flag (any thread may receive them); a watcher thread does the draining.
  struct sigaction sa {};
  sa.sa_handler = [](int sig) { g_signal.store(sig); };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto tok = std::make_shared<Tokenizer>(Tokenizer::load(a.model));
  std::shared_ptr<CausalLM> model = load_model(a.model);
  if (!a.prices.empty()) {
    std::ifstream f(a.prices);
    BALEINE_CHECK(f.good(), "--prices {}: cannot read", a.prices);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
      BALEINE_FAIL("--prices {}: {}", a.prices, e.what());
    }
    a.server.prices = server::PriceTable::from_json(j);
  }
  a.server.format = a.chat_format == "auto" ? guess_format(*tok, a.model) : chat_format_from_name(a.chat_format);
  a.server.model_id = !a.model_id.empty() ? a.model_id
                                          : std::filesystem::path(a.model).lexically_normal().filename().string();
  if (a.server.model_id.empty() || a.server.model_id == ".")
    a.server.model_id = std::filesystem::path(a.model).lexically_normal().parent_path().filename().string();
  if (!a.engine.disk_cache.dir.empty()) a.engine.disk_cache.model_key = model_files_key(a.model);
  auto engine = std::make_shared<Engine>(model, tok, a.engine);
  server::Server srv(engine, a.server);
  if (!a.image_model.empty()) {
    BALEINE_CHECK(is_janus_model_dir(a.image_model), "{}: --image-model must be a Janus-Pro model directory", a.image_model);
    auto image_tok = std::make_shared<const Tokenizer>(load_tokenizer_for(a.image_model));
    srv.set_image_engine(std::make_shared<ImageEngine>(load_janus(a.image_model), image_tok, a.images), a.image_model_id);
    fmt::print("baleine serve: images from {} as '{}' (POST /v1/images/generations)\n", a.image_model, a.image_model_id);
  }
  srv.bind();
  const std::string shown_host = a.server.host == "0.0.0.0" ? "127.0.0.1" : a.server.host;
  fmt::print("baleine serve: model {} ({} context), database {}\n", a.server.model_id, engine->context(), a.server.db_path);
  fmt::print("Web chat and API on http://{}:{}/  (OpenAI base URL http://{}:{}/v1)\n", shown_host, srv.port(), shown_host,
             srv.port());
  std::fflush(stdout);
  std::atomic<bool> listening{true};
  std::thread watcher([&] {
    while (listening && g_signal.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!listening) return;
    fmt::print(stderr, "baleine serve: signal {}: draining in-flight requests\n", g_signal.load());
    srv.drain_and_stop();
  });
  srv.run();
  listening = false;
  watcher.join();
  fmt::print(stderr, "baleine serve: stopped\n");
  return 0;
}

CommandRegistration reg{{"serve", "Serve the OpenAI/DeepSeek-compatible API and the web chat",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<ServeArgs>();
                           auto& s = a->server;
                           sub.add_option("--model", a->model, "Model directory (config.json, safetensors, tokenizer.json); default: the embedded models/default");
                           sub.add_option("--host", s.host, "Address to listen on")->capture_default_str();
                           sub.add_option("--image-model", a->image_model, "A Janus-Pro model directory: serves POST /v1/images/generations");
                           sub.add_option("--image-model-id", a->image_model_id, "Its model id in the images API")->capture_default_str();
                           sub.add_option("--max-images", a->images.max_images, "Pictures per images request at most")->check(CLI::Range(int64_t(1), int64_t(64)))->capture_default_str();
                           sub.add_option("--image-queue", a->images.max_queue, "Image requests waiting at most (more get 503)")->check(CLI::Range(int64_t(1), int64_t(4096)))->capture_default_str();
                           sub.add_option("--port", s.port, "Port (0: any free port)")->check(CLI::Range(0, 65535))->capture_default_str();
                           s.db_path.clear();
                           sub.add_option("--db", s.db_path, "SQLite database: keys, usage ledger, conversations (default: $BALEINE_DB, else ~/.local/share/baleine/baleine.db, the one `baleine keys` uses)");
                           sub.add_flag("--api-keys-required", s.api_keys_required, "Refuse unauthenticated requests even before any key exists");
                           sub.add_option("--cors", s.cors_origin, "Allowed CORS origin (off by default)");
                           sub.add_option("--model-id", a->model_id, "Model id shown to clients (default: the directory name)");
                           sub.add_option("--chat-format", a->chat_format, "auto, deepseek-v3, deepseek-r1, deepseek-v3.1 (hybrid thinking), deepseek-v3.2, deepseek-v4 (hybrid, DSML tool calls), qwen2, llama3")->capture_default_str();
                           sub.add_option("--prices", a->prices, "JSON price table (USD per 1M tokens), default DeepSeek's R1-launch prices");
                           sub.add_option("--max-body-bytes", s.max_body_bytes, "Request size cap")->capture_default_str();
                           sub.add_option("--http-threads", s.http_threads, "Connections served at once; more get 503 with Retry-After")->check(CLI::Range(4, 4096))->capture_default_str();
                           sub.add_option("--max-connections-per-client", s.max_connections_per_client, "Connections one client address may hold; more get 429")->check(CLI::Range(1, 4096))->capture_default_str();
                           sub.add_option("--header-timeout", s.header_timeout_s, "Seconds a client has to send the request line and headers")->check(CLI::Range(0.1, 3600.0))->capture_default_str();
                           sub.add_option("--body-timeout", s.body_timeout_s, "Seconds a client has to send the whole body")->check(CLI::Range(0.1, 3600.0))->capture_default_str();
                           sub.add_option("--allowed-host", s.allowed_hosts, "Host name the server answers to besides localhost (repeatable; '.example.com' includes subdomains, '*' any). On a loopback address only localhost names are answered (DNS-rebinding protection)");
                           sub.add_option("--rpm", s.default_rpm, "Requests per minute per key (0: unlimited; a key's own limit wins)")->capture_default_str();
                           sub.add_option("--tpm", s.default_tpm, "Tokens per minute per key (0: unlimited)")->capture_default_str();
                           sub.add_option("--max-batch", a->engine.max_batch, "Sequences decoded together")->check(CLI::Range(int64_t(1), int64_t(4096)))->capture_default_str();
                           sub.add_option("--max-queue", a->engine.max_queue, "Waiting requests beyond the batch; more get 503")->check(CLI::Range(int64_t(0), int64_t(1) << 20))->capture_default_str();
                           sub.add_option("--context", a->engine.context, "Tokens per sequence (0: the model's, capped at 4096)")->check(CLI::NonNegativeNumber);
                           sub.add_option("--disk-cache", a->engine.disk_cache.dir, "Directory of the prefix cache's disk tier: KV blocks of prompt prefixes survive restarts and are shared by servers of the same model (off by default)");
                           sub.add_option("--disk-cache-bytes", a->engine.disk_cache.max_bytes, "Size limit of the disk cache (least recently used blocks go first)")->check(CLI::Range(int64_t(1) << 20, int64_t(1) << 50))->capture_default_str();
                           sub.add_option("--drain-timeout", s.drain_timeout_s, "Seconds to wait for in-flight requests on SIGTERM")->capture_default_str();
                           sub.add_flag("!--no-web", s.web, "Do not serve the web chat at /");
                           sub.add_flag("--grounded-quotes", s.grounded_quotes, "In the server's agent loop (/v1/responses, assistants), once a search returned passages, every double-quoted span the model writes must copy the user's messages or the passages verbatim (per request: \"grounded_quotes\": true|false)");
                           sub.add_flag("--quote-search", s.quote_search, "With grounded quotes: each quote is chosen whole, the source span the model rates most likely (a best-first search over the spans the sources allow) instead of a token-by-token copy (per request: \"quote_search\": true|false)");
                           sub.add_option("--mcp-config", s.mcp_config, "JSON file of stdio MCP servers {\"mcpServers\": {LABEL: {\"command\", \"args\", \"env\", \"timeout_ms\"}}} that /v1/responses and assistants may use by label")->check(CLI::ExistingFile);
                           return [a] { return run_serve(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
