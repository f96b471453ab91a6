// server/vision_chat_api.cpp — chat completions about pictures: a request whose `model` is the image model's id
// (`serve --image-model DIR`, a Janus-Pro checkpoint) goes to the image worker, which reads the image_url parts
// with SigLIP and answers (infer/image_understanding.h). This file parses and validates OpenAI's content parts
// (text, image_url with a data: URL), decodes and preprocesses the pictures on the HTTP thread, and formats the
// chat.completion (or its stream: the answer arrives as one content chunk once it is complete).
#include <fmt/format.h>
#include <httplib.h>

#include <chrono>

#include "io/image.h"
#include "io/image_resize.h"
#include "server/chat_run.h"
#include "server/server.h"

namespace baleine::server {

namespace {

ApiError bad(const std::string& message, const std::string& param) {
  return ApiError(400, message, "invalid_request_error", param);
}

// A data: URL's picture bytes: data:image/png;base64,... or data:image/jpeg;base64,...
std::vector<uint8_t> data_url_bytes(const std::string& url, const std::string& where) {
  if (url.rfind("data:", 0) != 0)
    throw bad(fmt::format("{}: only data: URLs are accepted (data:image/png;base64,... or image/jpeg); the server "
                          "does not fetch remote images", where), where);
  const size_t comma = url.find(',');
  const std::string head = url.substr(5, comma == std::string::npos ? 0 : comma - 5);
  if (comma == std::string::npos || (head != "image/png;base64" && head != "image/jpeg;base64" && head != "image/jpg;base64"))
    throw bad(fmt::format("{}: a data URL must be data:image/png;base64,... or data:image/jpeg;base64,...", where), where);
  auto bytes = base64_decode(std::string_view(url).substr(comma + 1));
  if (!bytes) throw bad(fmt::format("{}: the data URL's base64 payload is malformed", where), where);
  return std::move(*bytes);
}

}  // namespace

bool Server::is_vision_chat(const json& body) const {
  return images_ && body.is_object() && body.contains("model") && body["model"].is_string() &&
         body["model"] == image_model_id_;
}

void Server::vision_chat(const Auth& auth, const json& b, httplib::Response& res) {
  if (!images_->can_read_images())
    throw bad(fmt::format("the model '{}' has no vision tower: it draws pictures but cannot read them", image_model_id_),
              "model");
  const JanusConfig& c = images_->config();
  if (!b.contains("messages") || !b["messages"].is_array() || b["messages"].empty())
    throw bad("'messages' must be a non-empty array", "messages");
  for (const char* k : {"tools", "tool_choice", "response_format", "logprobs", "n"})
    if (b.contains(k) && !b[k].is_null() && !(std::string(k) == "n" && b[k] == 1) &&
        !(std::string(k) == "logprobs" && b[k] == false))
      throw bad(fmt::format("'{}' is not supported with the image model '{}' (plain chat about pictures)", k,
                            image_model_id_), k);
  VisionChatRequest r;
  const int64_t S = c.vision.image_size;
  for (size_t i = 0; i < b["messages"].size(); ++i) {
    const json& m = b["messages"][i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) throw bad(where + " needs a string 'role'", where);
    const std::string role = m["role"];
    if (role != "system" && role != "developer" && role != "user" && role != "assistant")
      throw bad(fmt::format("{}: role '{}' is not supported with the image model (system, user, assistant)", where,
                            role.substr(0, 32)), where + ".role");
    JanusMessage jm;
    jm.role = role;
    const json* content = m.contains("content") ? &m["content"] : nullptr;
    if (!content || content->is_null()) throw bad(where + " needs 'content'", where + ".content");
    if (content->is_string()) {
      jm.text = content->get<std::string>();
    } else if (content->is_array()) {
      // Janus puts a message's pictures before its text ("<image_placeholder>\n{question}"): parts keep their
      // relative order, images first.
      for (size_t j = 0; j < content->size(); ++j) {
        const json& part = (*content)[j];
        const std::string pw = fmt::format("{}.content[{}]", where, j);
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
          throw bad(pw + " must be an object with a string 'type'", pw);
        const std::string type = part["type"];
        if (type == "text") {
          if (!part.contains("text") || !part["text"].is_string()) throw bad(pw + ": a text part needs a string 'text'", pw);
          jm.text += part["text"].get<std::string>();
        } else if (type == "image_url") {
          if (role != "user") throw bad(pw + ": only user messages may carry images", pw);
          const json* iu = part.contains("image_url") ? &part["image_url"] : nullptr;
          std::string url;
          if (iu && iu->is_string()) url = iu->get<std::string>();
          else if (iu && iu->is_object() && iu->contains("url") && (*iu)["url"].is_string()) url = (*iu)["url"];
          else throw bad(pw + ": an image_url part needs image_url.url (a data: URL)", pw + ".image_url");
          if (++r.n_images > images_->max_images())
            throw bad(fmt::format("at most {} images per request on this server", images_->max_images()), pw);
          io::RgbImage img;
          try {
            img = io::decode_image(data_url_bytes(url, pw + ".image_url"), pw + ".image_url");
          } catch (const ApiError&) {
            throw;
          } catch (const Error& e) {
            throw bad(e.what(), pw + ".image_url");
          }
          std::vector<float> px = io::janus_preprocess(img, S, c.image_min_size, c.image_mean, c.image_std);
          r.pixels.insert(r.pixels.end(), px.begin(), px.end());
          ++jm.images;
        } else {
          throw bad(fmt::format("{}: content part type '{}' is not supported (text, image_url)", pw, type.substr(0, 64)), pw);
        }
      }
    } else {
      throw bad(where + ": 'content' must be a string or an array of content parts", where + ".content");
    }
    if (role == "system" || role == "developer") {
      r.system += (r.has_system ? "\n" : "") + jm.text;
      r.has_system = true;
    } else {
      r.messages.push_back(std::move(jm));
    }
  }
  if (r.messages.empty() || r.messages.back().role != "user")
    throw bad("the last message must come from the user", "messages");
  for (const char* k : {"max_tokens", "max_completion_tokens"})
    if (b.contains(k) && !b[k].is_null()) {
      if (!b[k].is_number_integer() || b[k].get<int64_t>() < 1 || b[k].get<int64_t>() > 32768)
        throw bad(fmt::format("'{}' must be an integer in [1, 32768]", k), k);
      r.max_tokens = b[k].get<int64_t>();
    }
  if (b.contains("temperature") && !b["temperature"].is_null()) {
    if (!b["temperature"].is_number() || b["temperature"].get<double>() < 0 || b["temperature"].get<double>() > 2)
      throw bad("'temperature' must be a number in [0, 2]", "temperature");
    r.sampling.temperature = b["temperature"].get<float>();
  }
  if (b.contains("top_p") && !b["top_p"].is_null()) {
    if (!b["top_p"].is_number() || b["top_p"].get<double>() <= 0 || b["top_p"].get<double>() > 1)
      throw bad("'top_p' must be a number in (0, 1]", "top_p");
    r.sampling.top_p = b["top_p"].get<float>();
  }
  if (b.contains("seed") && !b["seed"].is_null()) {
    if (!b["seed"].is_number_integer()) throw bad("'seed' must be an integer", "seed");
    r.sampling.seed = b["seed"].get<uint64_t>();
  }
  const bool stream = b.contains("stream") && b["stream"].is_boolean() && b["stream"].get<bool>();

  const ImageResult out = run_image_job(auth, [&] { return images_->submit_chat(std::move(r)); }, "chat", "messages",
                                        "the image model failed: ");
  const std::string id = new_id("chatcmpl"), finish = out.stopped ? "stop" : "length";
  const int64_t created = unix_now();
  const json usage = {{"prompt_tokens", out.prompt_tokens}, {"completion_tokens", out.completion_tokens},
                      {"total_tokens", out.prompt_tokens + out.completion_tokens}};
  if (!stream) {
    res.set_content(dump({{"id", id}, {"object", "chat.completion"}, {"created", created}, {"model", image_model_id_},
                          {"choices", json::array({{{"index", 0},
                                                    {"message", {{"role", "assistant"}, {"content", out.text}}},
                                                    {"finish_reason", finish}}})},
                          {"usage", usage}}),
                    "application/json");
    return;
  }
  auto chunk = [&](const json& delta, const json& fin) {
    return "data: " + dump({{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", image_model_id_},
                            {"choices", json::array({{{"index", 0}, {"delta", delta}, {"finish_reason", fin}}})}}) + "\n\n";
  };
  std::string body = chunk({{"role", "assistant"}, {"content", ""}}, nullptr) + chunk({{"content", out.text}}, nullptr) +
                     chunk(json::object(), finish);
  const bool include_usage = b.contains("stream_options") && b["stream_options"].is_object() &&
                             b["stream_options"].value("include_usage", false);
  if (include_usage)
    body += "data: " + dump({{"id", id}, {"object", "chat.completion.chunk"}, {"created", created},
                             {"model", image_model_id_}, {"choices", json::array()}, {"usage", usage}}) + "\n\n";
  body += "data: [DONE]\n\n";
  res.set_header("Cache-Control", "no-cache");
  res.set_content(body, "text/event-stream");
}

}  // namespace baleine::server
