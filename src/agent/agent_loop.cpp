#include "agent/agent_loop.h"
#include "agent/grounding.h"
#include "agent/quote_search.h"

#include <algorithm>

#include "core/check.h"

namespace baleine::agent {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

const char* agent_event_kind_name(AgentEventKind k) {
  switch (k) {
    case AgentEventKind::ModelDelta: return "model_delta";
    case AgentEventKind::ModelTurn: return "model_turn";
    case AgentEventKind::ToolCall: return "tool_call";
    case AgentEventKind::ToolResult: return "tool_result";
    case AgentEventKind::Final: return "final";
    case AgentEventKind::Error: return "error";
  }
  return "?";
}

std::string agent_turn_prompt(ChatFormat format, const std::vector<ChatMessage>& conversation,
                              const std::vector<ToolFunction>& tools, const ToolChoice& choice, bool thinking) {
  ChatTemplateOptions o;
  o.thinking = thinking;
  return apply_chat_template(format, add_tools_to_messages(conversation, tools, choice), o);
}

ChatMessage agent_history_message(const AssistantTurn& turn) {
  ChatMessage m;
  m.role = "assistant";
  m.content = turn.content;
  m.has_content = !turn.content.empty() || turn.tool_calls.empty();
  m.tool_calls = turn.tool_calls;
  return m;
}

ChatMessage agent_tool_message(const ToolResult& result, size_t max_bytes) {
  ChatMessage m;
  m.role = "tool";
  m.content = result.content.dump();
  if (m.content.size() > max_bytes) m.content = m.content.substr(0, max_bytes) + "... (cut)";
  return m;
}

AgentLoop::AgentLoop(Engine& engine, std::shared_ptr<const VocabIndex> vocab, const ToolRegistry& tools, AgentOptions options)
    : engine_(engine), vocab_(std::move(vocab)), tools_(tools), options_(std::move(options)) {
  BALEINE_CHECK(options_.max_steps >= 1 && options_.max_steps <= 32, "max_steps must be 1..32, got {}", options_.max_steps);
}

AgentLoop::~AgentLoop() {
  for (auto& f : abandoned_) f.wait();
}

ToolResult AgentLoop::run_tool(const ToolCall& call, double* seconds) {
  const auto t0 = Clock::now();
  ToolResult r;
  const RegisteredTool* tool = tools_.find(call.name);
  json args = json::parse(call.arguments, nullptr, false);
  if (!tool) {
    r.error = true;
    r.content = {{"error", "no tool named '" + call.name + "'"}};
  } else if (args.is_discarded() || !args.is_object()) {
    r.error = true;
    r.content = {{"error", "the arguments are not a JSON object"}};
  } else {
    // The tool runs on its own thread so a slow one cannot hold the loop past its timeout.
    ToolHandler handler = tool->run;
    auto fut = std::async(std::launch::async, [handler, args] {
      try {
        return handler(args);
      } catch (const std::exception& e) {
        ToolResult err;
        err.error = true;
        err.content = {{"error", e.what()}};
        return err;
      }
    });
    if (fut.wait_for(tool->timeout) == std::future_status::ready) {
      r = fut.get();
    } else {
      r.error = true;
      r.content = {{"error", "timed out after " + std::to_string(tool->timeout.count()) + " ms"}};
      std::lock_guard lock(mu_);
      abandoned_.push_back(std::move(fut));
    }
  }
  *seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

AgentResult AgentLoop::run(std::vector<ChatMessage> conversation, const std::function<void(const AgentEvent&)>& on_event,
                           const std::atomic<bool>* cancel) {
  auto emit = [&](const AgentEvent& e) {
    if (on_event) on_event(e);
  };
  auto emit_error = [&](int step, const std::string& message) {
    AgentEvent e;
    e.kind = AgentEventKind::Error;
    e.step = step;
    e.text = message;
    emit(e);
  };
  const std::vector<ToolFunction> defs = tools_.definitions();
  const Tokenizer& tok = engine_.tokenizer();
  AgentResult result;
  for (int step = 0; step < options_.max_steps; ++step) {
    if (cancel && cancel->load()) {
      result.finish_reason = "cancelled";
      break;
    }
    // The last allowed turn must answer: its tools are switched off.
    ToolChoice choice = step == 0 ? options_.first_choice : ToolChoice{};
    if (step == options_.max_steps - 1 || defs.empty()) choice = ToolChoice{ToolChoiceMode::None, ""};
    // R1 prompts, and hybrid ones that think, open a <think> block the model's output starts inside.
    const bool r1 = generation_starts_in_reasoning(options_.format, options_.thinking);
    const std::vector<int32_t> prompt = tok.encode(agent_turn_prompt(options_.format, conversation, defs, choice, options_.thinking));
    const std::vector<std::string> sources =
        options_.grounded_quotes || options_.quote_search ? grounding_sources(conversation) : std::vector<std::string>{};
    const auto span_index = sources.empty() ? nullptr : std::make_shared<WordSpanIndex>(sources);
    // This turn's constraint, fresh: the tool-call grammar (per `choice`), then grounded quotes once passages exist.
    auto make_constraint = [&](std::shared_ptr<GroundedQuoteConstraint>& grounding) {
      std::shared_ptr<TokenConstraint> c;
      if (!defs.empty()) {
        ToolConstraintOptions to;
        to.parallel_tool_calls = options_.parallel_tool_calls;
        to.max_tokens = options_.params.max_tokens;
        c = make_tool_constraint(defs, choice, vocab_, to);
        // R1 prompts open a <think> block: a forced call's grammar starts after </think> (as on /chat), else the
        // call would be written inside the reasoning and read back as reasoning, not as a call.
        if (auto g = std::dynamic_pointer_cast<GrammarConstraint>(c); g && r1) {
          DeferredOptions d;
          d.max_tokens = to.max_tokens;
          d.force = true;
          c = std::make_shared<DeferredConstraint>("</think>", g, vocab_, d);
        }
      }
      grounding = nullptr;
      if (span_index) {
        grounding = std::make_shared<GroundedQuoteConstraint>(span_index, vocab_);
        c = std::make_shared<AllOfConstraint>(std::vector<std::shared_ptr<TokenConstraint>>{c, grounding});
      }
      return c;
    };
    // The turn is generated in segments when quotes are searched: each segment stops right after a token that opens
    // a grounded quote, the search writes the quote, and the next segment goes on after it (its constraint replays
    // every token so far, so the tool-call grammar and the quotes see one continuous output).
    const auto t0 = Clock::now();
    std::vector<int32_t> generated;
    std::string text;
    GenerationEvent last;
    bool failed = false;
    for (int segment = 0;; ++segment) {
      GenerationRequest req;
      req.prompt = prompt;
      req.prompt.insert(req.prompt.end(), generated.begin(), generated.end());
      req.params = options_.params;
      req.params.max_tokens = options_.params.max_tokens - int64_t(generated.size());
      std::shared_ptr<GroundedQuoteConstraint> grounding;
      std::shared_ptr<QuoteBreakConstraint> quote_break;
      try {
        req.params.constraint = make_constraint(grounding);
        if (req.params.constraint)
          for (int32_t t : generated) req.params.constraint->accept(t);
        if (grounding && options_.quote_search) {
          quote_break = std::make_shared<QuoteBreakConstraint>(req.params.constraint, grounding);
          quote_break->arm();
          req.params.constraint = quote_break;
        }
      } catch (const std::exception& e) {
        emit_error(step, e.what());
        failed = true;
        break;
      }
      std::shared_ptr<GenerationHandle> h;
      try {
        h = engine_.submit(std::move(req));
      } catch (const std::exception& e) {
        emit_error(step, e.what());
        failed = true;
        break;
      }
      for (;;) {
        auto e = h->next(std::chrono::milliseconds(200));
        if (cancel && cancel->load()) h->cancel();
        if (!e) continue;  // nothing yet (the final event always comes, cancelled or not)
        for (const auto& t : e->tokens) generated.push_back(t.token);
        if (!e->text.empty()) {
          text += e->text;
          AgentEvent d;
          d.kind = AgentEventKind::ModelDelta;
          d.step = step;
          d.text = e->text;
          emit(d);
        }
        if (e->finished) {
          if (segment == 0) result.usage.prompt_tokens += e->usage.prompt_tokens;
          last = std::move(*e);
          break;
        }
      }
      if (!quote_break || !quote_break->broke() || last.finish_reason != FinishReason::Stop) break;
      const int64_t left = options_.params.max_tokens - int64_t(generated.size());
      if (left <= 0) {
        last.finish_reason = FinishReason::Length;
        break;
      }
      std::vector<int32_t> context = prompt;
      context.insert(context.end(), generated.begin(), generated.end());
      QuoteSearchResult q;
      try {
        q = search_grounded_quote(engine_, context, *grounding, grounding->state(), *vocab_, left, options_.quote_search_options);
      } catch (const std::exception& e) {
        emit_error(step, e.what());
        failed = true;
        break;
      }
      ++result.quote_searches;
      result.quote_expansions += q.expansions;
      if (!q.found) continue;  // the next segment decodes this quote with the mask alone
      generated.insert(generated.end(), q.tokens.begin(), q.tokens.end());
      AgentEvent d;
      d.kind = AgentEventKind::ModelDelta;
      d.step = step;
      d.text = tok.decode(q.tokens);
      text += d.text;
      emit(d);
    }
    if (failed) {
      result.finish_reason = "error";
      break;
    }
    result.usage.completion_tokens += int64_t(generated.size());
    result.steps = step + 1;
    if (last.finish_reason == FinishReason::Error) {
      emit_error(step, last.error);
      result.finish_reason = "error";
      break;
    }
    AssistantTurn turn = parse_assistant_output(text, defs, finish_reason_name(last.finish_reason), r1);
    if (choice.mode == ToolChoiceMode::None) turn.tool_calls.clear();
    AgentEvent mt;
    mt.kind = AgentEventKind::ModelTurn;
    mt.step = step;
    mt.text = turn.content;
    mt.reasoning = turn.reasoning;
    mt.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    mt.finish_reason = turn.tool_calls.empty() ? finish_reason_name(last.finish_reason) : "tool_calls";
    emit(mt);
    conversation.push_back(agent_history_message(turn));
    if (turn.tool_calls.empty() || last.finish_reason == FinishReason::Cancelled) {
      result.content = turn.content;
      result.reasoning = turn.reasoning;
      result.finish_reason = last.finish_reason == FinishReason::Cancelled ? "cancelled" : finish_reason_name(last.finish_reason);
      AgentEvent fin = mt;
      fin.kind = AgentEventKind::Final;
      fin.finish_reason = result.finish_reason;
      emit(fin);
      break;
    }
    // Client-executed functions: the loop ends here; server tools of this turn still run (their outputs go with
    // the pending calls, so the caller can keep the template's call order).
    const bool for_client = std::any_of(turn.tool_calls.begin(), turn.tool_calls.end(), [&](const ToolCall& c) {
      const RegisteredTool* t = tools_.find(c.name);
      return t && !t->run;
    });
    for (const ToolCall& call : turn.tool_calls) {
      if (for_client) {
        const RegisteredTool* t = tools_.find(call.name);
        if (t && !t->run) {
          result.pending_calls.push_back({call, true, "", false});
          continue;
        }
      }
      AgentEvent ce;
      ce.kind = AgentEventKind::ToolCall;
      ce.step = step;
      ce.call = call;
      emit(ce);
      double secs = 0;
      ToolResult r = run_tool(call, &secs);
      ChatMessage tm = agent_tool_message(r, options_.max_result_bytes);
      AgentEvent re = ce;
      re.kind = AgentEventKind::ToolResult;
      re.result = r.content;
      re.tool_error = r.error;
      re.citations = r.citations;
      re.seconds = secs;
      emit(re);
      for (auto& c : r.citations) result.citations.push_back(c);
      if (r.error) result.failed_calls.push_back(call.id);
      if (for_client) {
        result.pending_calls.push_back({call, false, tm.content, r.error});
        continue;
      }
      conversation.push_back(std::move(tm));
    }
    if (for_client) {
      result.content = turn.content;
      result.reasoning = turn.reasoning;
      result.finish_reason = "tool_calls";
      break;
    }
  }
  if (result.finish_reason.empty()) result.finish_reason = "max_steps";
  result.messages = std::move(conversation);
  return result;
}

}  // namespace baleine::agent
