// agent/builtin_tools.h — tools the server runs itself: an exact calculator, the current date and time, and
// retrieval over an assistant's documents; and the registry the agent loop calls them through. No shell, no
// file or network access.
// defines: CalculatorLimits, calculate, ToolResult, ToolHandler, RegisteredTool, ToolRegistry,
//          calculator_tool, datetime_tool, retrieval_tool
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/rational.h"
#include "agent/tools.h"

namespace baleine::agent {

class DocumentStore;

struct CalculatorLimits {
  size_t max_expression_bytes = 1000;
  size_t max_digits = 1000;      // of any intermediate numerator + denominator
  int64_t max_exponent = 10000;  // |e| in a^e
  int max_depth = 64;            // parentheses / unary nesting
};
// Evaluates + - * / ^ (also × ÷ − ** and parentheses) exactly over rationals. Numbers: 12, 1.5, 2e-3.
// Throws baleine::Error with a message for the model ("division by zero", "result too large"...).
Rational calculate(const std::string& expression, const CalculatorLimits& limits = {});

struct ToolResult {
  nlohmann::json content;  // what the model reads (as JSON text) in the tool message
  bool error = false;
  std::vector<nlohmann::json> citations;  // retrieval: {document, offset, text}
};
using ToolHandler = std::function<ToolResult(const nlohmann::json& arguments)>;

struct RegisteredTool {
  ToolFunction definition;
  ToolHandler run;
  std::chrono::milliseconds timeout{5000};
};

// Name -> tool. Thread-compatible: fill it, then share it read-only.
class ToolRegistry {
 public:
  void add(RegisteredTool tool);  // throws on a duplicate name
  const RegisteredTool* find(const std::string& name) const;
  std::vector<ToolFunction> definitions() const;  // in the order added
  size_t size() const { return order_.size(); }

 private:
  std::map<std::string, RegisteredTool> tools_;
  std::vector<std::string> order_;
};

RegisteredTool calculator_tool(CalculatorLimits limits = {});
// now(): injectable clock for tests.
RegisteredTool datetime_tool(std::function<std::chrono::system_clock::time_point()> now = nullptr);
// search over `store` (kept alive by the tool), top_k passages with document name and offset.
// fallback_query (usually the user's last message) is searched instead of the model's query when that query is
// unusable: empty, without any word of two letters or digits, or matching no passage. A tiny model forced to call
// the tool (tool_choice "required") writes a well-formed but often meaningless query; the user's own words are then
// the sensible query. When the model's query shares no word with fallback_query (a query the model made up rather
// than took from the conversation), both are searched and their passages interleaved, the user's words first.
// The result says which query ran: {"query": ..., "query_source": "model" | "fallback" | "model+fallback", ...}.
RegisteredTool retrieval_tool(std::shared_ptr<DocumentStore> store, int top_k = 3, std::string fallback_query = "");

}  // namespace baleine::agent
