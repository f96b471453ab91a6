// infer/image_engine.h — the image worker behind `serve --image-model`: one thread owns a Janus-Pro model and its
// tokenizer and draws the queued requests one after another (each is already a batch: 2·n rows); HTTP threads talk
// to it only through submit() and the handles, never touching the model.
// defines: ImageRequest, ImageResult, ImageHandle, ImageEngineOptions, ImageEngine
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "infer/engine.h"
#include "infer/image_generation.h"
#include "infer/image_understanding.h"
#include "tokenizer/tokenizer.h"

namespace baleine {

struct ImageRequest {
  std::string caption;
  int64_t n = 1;
  double cfg_weight = 5.0, temperature = 1.0;
  uint64_t seed = 0;
};

// A chat turn about pictures (chat completions with image_url parts): the conversation and its pictures, already
// decoded and preprocessed by the HTTP thread ([n, S, S, 3] channels-last, in order of appearance).
struct VisionChatRequest {
  std::vector<JanusMessage> messages;
  std::string system;  // empty: Janus's own system prompt
  bool has_system = false;
  std::vector<float> pixels;
  int64_t n_images = 0;
  SamplingParams sampling;
  int64_t max_tokens = 256;
};

struct ImageResult {
  bool ok = false;
  std::string error;                      // when !ok
  int64_t size = 0;                       // pixels per side
  std::vector<std::vector<uint8_t>> rgb;  // n images [size, size, 3]
  int64_t prompt_tokens = 0;
  double seconds = 0;
  // vision chat
  std::string text;
  int64_t completion_tokens = 0;
  bool stopped = false;  // ended on end-of-sentence (finish_reason stop), else length
};

class ImageHandle {
 public:
  std::optional<ImageResult> wait(std::chrono::milliseconds timeout);
  void finish(ImageResult r);  // worker side
  bool cancelled() const;
  void cancel();

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<ImageResult> result_;
  bool cancelled_ = false;
};

struct ImageEngineOptions {
  int64_t max_queue = 8;      // waiting requests; more -> QueueFullError
  int64_t max_images = 4;     // n per request
  int32_t pad_id = -1;        // -1: the tokenizer's <｜▁pad▁｜>
};

class ImageEngine {
 public:
  ImageEngine(std::unique_ptr<JanusModel> model, std::shared_ptr<const Tokenizer> tokenizer, ImageEngineOptions o = {});
  ~ImageEngine();  // stops the worker; queued requests finish with an error
  ImageEngine(const ImageEngine&) = delete;
  ImageEngine& operator=(const ImageEngine&) = delete;

  // Validates (non-empty caption that fits the context with the image tokens, 1 <= n <= max_images, finite
  // cfg/temperature) and queues; throws Error (a 400) or QueueFullError (a 503). Thread-safe.
  std::shared_ptr<ImageHandle> submit(ImageRequest r);
  // Validates (roles, image count against the placeholders, context) and queues a vision chat; same errors.
  std::shared_ptr<ImageHandle> submit_chat(VisionChatRequest r);
  bool can_read_images() const;
  int64_t vision_image_size() const;  // S: pixels per side SigLIP reads
  const JanusConfig& config() const;
  int64_t image_size() const { return size_; }
  int64_t image_tokens() const { return image_tokens_; }  // codes drawn per picture
  int64_t max_images() const { return opt_.max_images; }
  void shutdown();

 private:
  struct Job {
    ImageRequest req;
    std::optional<VisionChatRequest> chat;
    JanusPrompt prompt;
    std::vector<int32_t> ids;
    std::shared_ptr<ImageHandle> handle;
  };
  std::shared_ptr<ImageHandle> enqueue(Job j);  // gives the job its handle; QueueFullError when full
  void loop();

  std::unique_ptr<JanusModel> model_;
  std::shared_ptr<const Tokenizer> tok_;
  ImageEngineOptions opt_;
  int32_t pad_ = 0;
  int64_t size_ = 0, context_ = 0, image_tokens_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace baleine
