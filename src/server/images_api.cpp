// server/images_api.cpp — POST /v1/images/generations in OpenAI's images shape, drawn by the Janus-Pro image
// worker (infer/image_engine.h) when `serve --image-model DIR` loaded one; same keys, rate limits, ledger, metrics
// and drain as chat. This file only parses, validates and formats (PNG + base64).
#include <fmt/format.h>
#include <httplib.h>

#include <chrono>

#include "io/png.h"
#include "server/server.h"

namespace baleine::server {

namespace {

ApiError bad(const std::string& message, const std::string& param) {
  return ApiError(400, message, "invalid_request_error", param);
}

}  // namespace

void Server::set_image_engine(std::shared_ptr<ImageEngine> images, std::string model_id) {
  images_ = std::move(images);
  image_model_id_ = std::move(model_id);
}

ImageResult Server::run_image_job(const Auth& auth, const std::function<std::shared_ptr<ImageHandle>()>& submit,
                                  const char* endpoint, const std::string& param, const std::string& failure) {
  check_admission(auth);
  std::shared_ptr<ImageHandle> h;
  try {
    h = submit();
  } catch (const QueueFullError&) {
    ApiError err(503, "The image queue is full; retry later", "server_error", "", "queue_full");
    err.retry_after = 5;
    throw err;
  } catch (const Error& e) {
    throw bad(e.what(), param);
  }
  const int64_t ledger = store_->ledger_begin(auth.key_id, endpoint, image_model_id_, 0);
  ++metrics_.in_flight;
  std::optional<ImageResult> out;
  while (!(out = h->wait(std::chrono::milliseconds(1000)))) {
  }
  --metrics_.in_flight;
  LedgerEntry le;
  le.prompt_tokens = out->prompt_tokens;
  le.completion_tokens = out->completion_tokens;
  le.status = out->ok ? "done" : "error";
  store_->ledger_end(ledger, le);
  if (auth.tpm > 0) limiter_.add_tokens(auth.key_id, out->prompt_tokens + out->completion_tokens);
  if (!out->ok) throw ApiError(500, failure + out->error, "server_error");
  return std::move(*out);
}

// {prompt, model?, n?, size?, response_format?: b64_json|url, seed?, user?, quality?, style?}
void Server::images(const httplib::Request& req, httplib::Response& res) {
  const Auth auth = authenticate(req);
  if (!images_)
    throw ApiError(404, "this server draws no images (start `baleine serve` with --image-model DIR, a Janus-Pro model)",
                   "invalid_request_error", "model", "model_not_found");
  const json b = parse_json_body(req.body, opt_.max_body_bytes);
  if (!b.is_object()) throw ApiError(400, "the request body must be a JSON object");
  if (!b.contains("prompt") || !b["prompt"].is_string() || b["prompt"].get_ref<const std::string&>().empty())
    throw bad("'prompt' is required (a non-empty string)", "prompt");
  const std::string& prompt = b["prompt"].get_ref<const std::string&>();
  if (prompt.size() > 32000) throw bad("'prompt' is longer than 32000 characters", "prompt");
  std::string model = image_model_id_;
  if (b.contains("model") && !b["model"].is_null()) {
    if (!b["model"].is_string()) throw bad("'model' must be a string", "model");
    if (b["model"] != image_model_id_)
      throw ApiError(404, fmt::format("The model '{}' does not exist (images: {})", b["model"].get<std::string>().substr(0, 200),
                                      image_model_id_), "invalid_request_error", "model", "model_not_found");
  }
  ImageRequest r;
  r.caption = prompt;
  if (b.contains("n") && !b["n"].is_null()) {
    if (!b["n"].is_number_integer() || b["n"].get<int64_t>() < 1 || b["n"].get<int64_t>() > images_->max_images())
      throw bad(fmt::format("'n' must be an integer in [1, {}] on this server", images_->max_images()), "n");
    r.n = b["n"].get<int64_t>();
  }
  const std::string native = fmt::format("{}x{}", images_->image_size(), images_->image_size());
  if (b.contains("size") && !b["size"].is_null()) {
    if (!b["size"].is_string() || (b["size"] != native && b["size"] != "auto"))
      throw bad(fmt::format("'size' must be '{}' (or 'auto'): Janus-Pro draws {} pictures", native, native), "size");
  }
  std::string format = "b64_json";
  if (b.contains("response_format") && !b["response_format"].is_null()) {
    if (!b["response_format"].is_string() || (b["response_format"] != "b64_json" && b["response_format"] != "url"))
      throw bad("'response_format' must be 'b64_json' or 'url'", "response_format");
    format = b["response_format"];
  }
  if (b.contains("seed") && !b["seed"].is_null()) {
    if (!b["seed"].is_number_integer() || b["seed"].get<int64_t>() < 0)
      throw bad("'seed' must be a non-negative integer", "seed");
    r.seed = b["seed"].get<uint64_t>();
  } else {
    r.seed = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  for (const char* k : {"user", "quality", "style"})
    if (b.contains(k) && !b[k].is_null() && !b[k].is_string()) throw bad(fmt::format("'{}' must be a string", k), k);

  const ImageResult out = run_image_job(auth, [&] { return images_->submit(r); }, "images", "prompt",
                                        "image generation failed: ");
  json data = json::array();
  for (const auto& rgb : out.rgb) {
    const std::vector<uint8_t> bytes = io::png_encode(rgb, out.size, out.size);
    const std::string png = base64(bytes.data(), bytes.size());
    if (format == "url") data.push_back({{"url", "data:image/png;base64," + png}});
    else data.push_back({{"b64_json", png}});
  }
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
  res.set_content(dump({{"created", created}, {"data", data}, {"size", native}, {"output_format", "png"},
                        {"usage", {{"input_tokens", out.prompt_tokens},
                                   {"output_tokens", int64_t(out.rgb.size()) * images_->image_tokens()},
                                   {"seconds", out.seconds}}}}),
                  "application/json");
}

}  // namespace baleine::server
