// agent/embeddings.h — text embeddings from the model itself: the mean of its final hidden states over the text's
// tokens, L2-normalised (what /v1/embeddings and dense retrieval use).
// defines: model_embedding, model_embedder
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "agent/retrieval.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace baleine::agent {

// [hidden_size]; the first max_tokens tokens count; an empty text gives zeros. Not thread-safe on `model`.
std::vector<float> model_embedding(CausalLM& model, const Tokenizer& tok, const std::string& text, int64_t max_tokens = 512);
// An Embedder over `model` with its own mutex. The model must not be in use elsewhere meanwhile (the engine's
// model runs on the engine thread: give the embedder its own copy, e.g. a second load_model()).
Embedder model_embedder(std::shared_ptr<CausalLM> model, std::shared_ptr<const Tokenizer> tok, int64_t max_tokens = 512);

}  // namespace baleine::agent
