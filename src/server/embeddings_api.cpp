// server/embeddings_api.cpp — POST /v1/embeddings in the OpenAI shape. The vectors are the model's own: the mean
// of its final hidden states (after the last norm) over the input's tokens, L2-normalised, computed by the engine
// thread (Engine::submit_embedding, batched with generation); this file only parses, validates and formats.
#include <fmt/format.h>
#include <httplib.h>

#include <cmath>
#include <cstring>

#include "server/server.h"

namespace baleine::server {

namespace {

constexpr size_t kMaxInputs = 2048;        // as OpenAI
constexpr int64_t kMaxTotalTokens = 300000;  // as OpenAI

ApiError bad_input(const std::string& message) { return ApiError(400, message, "invalid_request_error", "input"); }

}  // namespace

// Inputs as token ids: a string, an array of strings, an array of token ids, or an array of such arrays.
std::vector<std::vector<int32_t>> Server::embedding_inputs(const json& input, const Tokenizer& tok, const Limits& limits) {
  auto text = [&](const json& s, const std::string& where) {
    const std::string& t = s.get_ref<const std::string&>();
    if (t.empty()) throw bad_input(where + " must not be an empty string");
    // User text: special-token spellings are plain text here.
    return tok.encode(t, /*add_bos=*/false, /*allow_special=*/false);
  };
  auto ids = [&](const json& a, const std::string& where) {
    if (a.empty()) throw bad_input(where + " must not be an empty array of token ids");
    std::vector<int32_t> out;
    for (const auto& x : a) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= tok.vocab_size())
        throw bad_input(fmt::format("{} must hold token ids, integers in [0, {})", where, tok.vocab_size()));
      out.push_back(x.get<int32_t>());
    }
    return out;
  };
  std::vector<std::vector<int32_t>> out;
  if (input.is_string()) {
    out.push_back(text(input, "'input'"));
  } else if (input.is_array() && !input.empty() && input[0].is_number()) {
    out.push_back(ids(input, "'input'"));
  } else if (input.is_array() && !input.empty()) {
    if (input.size() > kMaxInputs)
      throw bad_input(fmt::format("'input' has {} items; at most {} per request", input.size(), kMaxInputs));
    for (size_t i = 0; i < input.size(); ++i) {
      const std::string where = fmt::format("'input[{}]'", i);
      if (input[i].is_string()) out.push_back(text(input[i], where));
      else if (input[i].is_array()) out.push_back(ids(input[i], where));
      else throw bad_input(where + " must be a string or an array of token ids");
    }
  } else {
    throw bad_input("'input' must be a non-empty string, an array of strings, an array of token ids or an array of such arrays");
  }
  int64_t total = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    // A text may encode to nothing only if it is empty, which was refused above.
    if (int64_t(out[i].size()) > limits.context)
      throw ApiError(400, fmt::format("input {} has {} tokens; this model's maximum context length is {} tokens", i,
                                      out[i].size(), limits.context),
                     "invalid_request_error", "input", "context_length_exceeded");
    total += int64_t(out[i].size());
  }
  if (total > kMaxTotalTokens)
    throw bad_input(fmt::format("the inputs have {} tokens in all; at most {} per request", total, kMaxTotalTokens));
  return out;
}

// POST /v1/embeddings: {input, model, encoding_format?: float|base64, dimensions?, user?}
void Server::embeddings(const httplib::Request& req, httplib::Response& res) {
  const Auth auth = authenticate(req);
  const json b = parse_json_body(req.body, opt_.max_body_bytes);
  if (!b.is_object()) throw ApiError(400, "the request body must be a JSON object");
  if (!b.contains("model") || !b["model"].is_string())
    throw ApiError(400, "'model' is required (a string)", "invalid_request_error", "model");
  const std::string model = b["model"];
  bool known = false;
  std::string served;
  for (const auto& r : routes_) {
    known = known || r.id == model;
    served += (served.empty() ? "" : ", ") + r.id;
  }
  if (!known)
    throw ApiError(404, fmt::format("The model '{}' does not exist (served: {})", model.substr(0, 200), served),
                   "invalid_request_error", "model", "model_not_found");
  if (!b.contains("input")) throw bad_input("'input' is required");
  std::string format = "float";
  if (b.contains("encoding_format") && !b["encoding_format"].is_null()) {
    if (!b["encoding_format"].is_string() || (b["encoding_format"] != "float" && b["encoding_format"] != "base64"))
      throw ApiError(400, "'encoding_format' must be 'float' or 'base64'", "invalid_request_error", "encoding_format");
    format = b["encoding_format"];
  }
  const int64_t d = engine_->config().hidden_size;
  int64_t dims = d;
  if (b.contains("dimensions") && !b["dimensions"].is_null()) {
    // As OpenAI's text-embedding-3: the first `dimensions` components, renormalised.
    if (!b["dimensions"].is_number_integer() || b["dimensions"].get<int64_t>() < 1 || b["dimensions"].get<int64_t>() > d)
      throw ApiError(400, fmt::format("'dimensions' must be an integer in [1, {}] (this model's embedding size)", d),
                     "invalid_request_error", "dimensions");
    dims = b["dimensions"].get<int64_t>();
  }
  if (b.contains("user") && !b["user"].is_null() && !b["user"].is_string())
    throw ApiError(400, "'user' must be a string", "invalid_request_error", "user");
  EmbeddingRequest er;
  er.inputs = embedding_inputs(b["input"], engine_->tokenizer(), limits_);
  int64_t tokens = 0;
  for (const auto& in : er.inputs) tokens += int64_t(in.size());
  check_admission(auth);
  if (auth.tpm > 0) limiter_.add_tokens(auth.key_id, tokens);
  const int64_t ledger = store_->ledger_begin(auth.key_id, "embeddings", model, tokens);
  std::shared_ptr<EmbeddingHandle> h;
  try {
    h = engine_->submit_embedding(std::move(er));
  } catch (const QueueFullError&) {
    ApiError err(503, "The server is overloaded (queue full); retry later", "server_error", "", "queue_full");
    err.retry_after = 1;
    throw err;
  } catch (const Error& e) {
    throw bad_input(e.what());
  }
  ++metrics_.in_flight;
  std::optional<EmbeddingResult> r;
  while (!(r = h->wait(std::chrono::seconds(1)))) {
  }
  --metrics_.in_flight;
  LedgerEntry le;
  le.prompt_tokens = tokens;
  le.status = r->finish_reason == FinishReason::Stop ? "done" : r->finish_reason == FinishReason::Cancelled ? "cancelled" : "error";
  store_->ledger_end(ledger, le);
  metrics_.tokens(tokens, 0, 0);
  if (r->finish_reason != FinishReason::Stop)
    throw ApiError(500, "embedding failed: " + (r->error.empty() ? std::string(finish_reason_name(r->finish_reason)) : r->error),
                   "server_error");
  json data = json::array();
  for (size_t i = 0; i < r->vectors.size(); ++i) {
    std::vector<float>& v = r->vectors[i];
    if (dims < d) {
      v.resize(size_t(dims));
      double n2 = 0;
      for (float x : v) n2 += double(x) * x;
      const double n = std::sqrt(n2);
      if (n > 0)
        for (float& x : v) x = float(x / n);
    }
    json e = {{"object", "embedding"}, {"index", i}};
    if (format == "base64") e["embedding"] = base64(v.data(), v.size() * sizeof(float));  // little-endian f32, as OpenAI
    else e["embedding"] = v;
    data.push_back(std::move(e));
  }
  res.set_content(dump({{"object", "list"}, {"data", data}, {"model", model},
                        {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}}),
                  "application/json");
}

}  // namespace baleine::server
