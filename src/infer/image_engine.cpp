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

std::shared_ptr<ImageHandle> ImageEngine::enqueue(Job j) {
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

bool ImageEngine::can_read_images() const { return model_->config().has_vision; }
int64_t ImageEngine::vision_image_size() const { return model_->config().vision.image_size; }
const JanusConfig& ImageEngine::config() const { return model_->config(); }

std::shared_ptr<ImageHandle> ImageEngine::submit_chat(VisionChatRequest r) {
  const JanusConfig& c = model_->config();
  BALEINE_CHECK(c.has_vision || r.n_images == 0, "this Janus checkpoint has no vision tower: it cannot read images");
  const int64_t S = c.has_vision ? c.vision.image_size : 0;
  BALEINE_CHECK(int64_t(r.pixels.size()) == r.n_images * S * S * 3, "vision chat: pixels do not match {} images", r.n_images);
  BALEINE_CHECK(r.max_tokens >= 1, "'max_tokens' must be at least 1");
  Job j;
  j.prompt = janus_understanding_prompt(*tok_, r.messages, r.has_system ? r.system : janus_system_prompt(),
                                        c.has_vision ? c.vision.tokens() : 1);
  BALEINE_CHECK(int64_t(j.prompt.image_offsets.size()) == r.n_images, "vision chat: {} images for {} image slots",
                r.n_images, j.prompt.image_offsets.size());
  for (int32_t id : j.prompt.ids)
    BALEINE_CHECK(id >= 0 && id < c.language.vocab_size, "the prompt's token {} is outside the model's vocabulary", id);
  BALEINE_CHECK(int64_t(j.prompt.ids.size()) < context_,
                "the conversation has {} tokens ({} per image); the model's context is {}", j.prompt.ids.size(),
                c.has_vision ? c.vision.tokens() + 2 : 0, context_);
  j.chat = std::move(r);
  return enqueue(std::move(j));
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
  return enqueue(std::move(j));
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
      if (j.chat) {
        const VisionChatRequest& q = *j.chat;
        Tensor rows;
        if (q.n_images > 0) rows = model_->image_rows(q.pixels.data(), q.n_images);
        UnderstandOptions o;
        o.sampling = q.sampling;
        o.max_tokens = q.max_tokens;
        if (tok_->eos_id() >= 0) o.stop_tokens = {tok_->eos_id()};
        o.on_token = [&](int32_t) { return !j.handle->cancelled(); };
        UnderstandResult u = understand_images(*model_, j.prompt, rows, o);
        r.text = tok_->decode(u.tokens, /*skip_special=*/true);
        r.completion_tokens = int64_t(u.tokens.size());
        r.stopped = u.stopped;
        r.prompt_tokens = u.prompt_tokens;
        r.ok = true;
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        j.handle->finish(std::move(r));
        continue;
      }
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
