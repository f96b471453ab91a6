#include "infer/image_engine.h"

#include <cmath>

#include "core/check.h"

namespace baleine {

namespace {
ImageResult failed(std::string why) {
  ImageResult r;
  r.error = std::move(why);
  return r;
}
}  // namespace

std::optional<ImageResult> ImageHandle::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return result_.has_value(); })) return std::nullopt;
  return result_;
}

void ImageHandle::finish(ImageResult r) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (result_) return;
    result_ = std::move(r);
  }
  cv_.notify_all();
}

bool ImageHandle::cancelled() const {
  std::lock_guard<std::mutex> lk(mu_);
  return cancelled_;
}

void ImageHandle::cancel() {
  std::lock_guard<std::mutex> lk(mu_);
  cancelled_ = true;
}

ImageEngine::ImageEngine(std::unique_ptr<JanusModel> model, std::shared_ptr<const Tokenizer> tokenizer,
                         ImageEngineOptions o)
    : model_(std::move(model)), tok_(std::move(tokenizer)), opt_(o) {
  BALEINE_CHECK(model_ && tok_, "ImageEngine needs a model and a tokenizer");
  BALEINE_CHECK(opt_.max_images >= 1 && opt_.max_images <= 64, "max images per request must be in [1, 64]");
  const JanusConfig& c = model_->config();
  size_ = c.image_size;
  context_ = c.language.max_position_embeddings;
  image_tokens_ = c.image_tokens();
  pad_ = opt_.pad_id;
  if (pad_ < 0) {
    auto p = tok_->token_id("<｜▁pad▁｜>");
    BALEINE_CHECK(p.has_value(), "the image model's tokenizer has no <｜▁pad▁｜> token (give the pad id explicitly)");
    pad_ = *p;
  }
  BALEINE_CHECK(pad_ < c.language.vocab_size, "pad id {} is outside the image model's vocabulary", pad_);
  worker_ = std::thread([this] { loop(); });
}

ImageEngine::~ImageEngine() { shutdown(); }

void ImageEngine::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_ && !worker_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  std::lock_guard<std::mutex> lk(mu_);
  for (Job& j : queue_) j.handle->finish(failed("the server is shutting down"));
  queue_.clear();
}

std::shared_ptr<ImageHandle> ImageEngine::submit(ImageRequest r) {
  BALEINE_CHECK(!r.caption.empty(), "'prompt' must not be empty");
  BALEINE_CHECK(r.n >= 1 && r.n <= opt_.max_images, "'n' must be in [1, {}] on this server, got {}", opt_.max_images, r.n);
  BALEINE_CHECK(std::isfinite(r.cfg_weight) && std::isfinite(r.temperature) && r.temperature >= 0,
                "cfg weight and temperature must be finite (temperature >= 0)");
  Job j;
  j.ids = janus_prompt_ids(*tok_, r.caption);  // the caption's special-token spellings stay plain text
  for (int32_t id : j.ids)
    BALEINE_CHECK(id >= 0 && id < model_->config().language.vocab_size,
                  "the prompt's token {} is outside the image model's vocabulary", id);
  BALEINE_CHECK(int64_t(j.ids.size()) + image_tokens_ <= context_,
                "'prompt' has {} tokens; with the {} image tokens that exceeds the image model's context of {}",
                j.ids.size(), image_tokens_, context_);
  j.req = std::move(r);
  j.handle = std::make_shared<ImageHandle>();
  auto h = j.handle;
  {
    std::lock_guard<std::mutex> lk(mu_);
    BALEINE_CHECK(!stop_, "the image engine is shut down");
    if (int64_t(queue_.size()) >= opt_.max_queue) throw QueueFullError("the image queue is full");
    queue_.push_back(std::move(j));
  }
  cv_.notify_one();
  return h;
}

void ImageEngine::loop() {
  for (;;) {
    Job j;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      j = std::move(queue_.front());
      queue_.pop_front();
    }
    if (j.handle->cancelled()) {
      j.handle->finish(failed("cancelled"));
      continue;
    }
    ImageResult r;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      ImageGenOptions o;
      o.parallel = j.req.n;
      o.cfg_weight = j.req.cfg_weight;
      o.temperature = j.req.temperature;
      o.seed = j.req.seed;
      GeneratedImages g = generate_images(*model_, j.ids, pad_, o);
      for (int64_t i = 0; i < g.count; ++i) r.rgb.push_back(to_rgb8(g.pixels, i));
      r.size = g.size;
      r.prompt_tokens = int64_t(j.ids.size());
      r.ok = true;
    } catch (const std::exception& e) {  // never let an error escape the worker
      r.ok = false;
      r.error = e.what();
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    j.handle->finish(std::move(r));
  }
}

}  // namespace baleine
