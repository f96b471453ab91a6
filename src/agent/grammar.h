// agent/grammar.h — the grammars that constrained decoding follows: JSON schemas compiled into a graph of nodes,
// plus the few non-JSON pieces tool calls need (literal marker text, sequences, choices, repetitions).
// defines: GrammarNodeKind, GrammarNode, Grammar, SchemaOptions, compile_json_schema, json_object_grammar,
//          validate_json_schema
//
// A Grammar owns its nodes; nodes point at each other (a JSON "any value" node refers to itself). Every node
// knows the length of its shortest serialisation (min_len), which is what lets the decoder always finish in time.
// The compiled language is a subset of what the schema accepts (e.g. an object with declared properties never
// gets undeclared keys, numbers are at most 20 characters): every output validates, not every valid document
// can be produced.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace baleine::agent {

enum class GrammarNodeKind : uint8_t {
  Object,   // JSON object: declared properties (any order, required ones before '}') or generic keys
  Array,    // open item (sep item)* close, min/max items; JSON arrays are "[" "," "]"
  String,   // JSON string (valid UTF-8, escapes, no raw control characters)
  Number,   // JSON number
  Integer,  // JSON number without fraction or exponent
  Literal,  // exact bytes (enum/const values, true/false/null, tool-call markers)
  AnyOf,    // one of several nodes
  Seq,      // nodes one after another
};

struct GrammarNode {
  GrammarNodeKind kind = GrammarNodeKind::Literal;
  uint32_t id = 0;       // index in its Grammar
  bool json = true;      // whitespace may precede the value (false for tool-call marker text)
  int64_t min_len = 0;   // bytes of the shortest serialisation
  // Object
  std::vector<std::string> keys;              // JSON-encoded keys with their quotes
  std::vector<const GrammarNode*> values;     // value node of each key
  std::vector<const GrammarNode*> key_nodes;  // Literal node of each key (what the decoder matches)
  uint64_t required = 0;                      // bit i: keys[i] is required
  const GrammarNode* generic_value = nullptr; // set: any string key, values of this node (declared keys unused)
  // Array (open/sep/close are Literal nodes)
  const GrammarNode* items = nullptr;
  const GrammarNode *open = nullptr, *sep = nullptr, *close = nullptr;
  int64_t min_items = 0, max_items = -1;      // -1: unbounded
  // Literal
  std::string text;
  // AnyOf alternatives / Seq parts
  std::vector<const GrammarNode*> children;
};

class Grammar {
 public:
  Grammar() = default;
  Grammar(Grammar&&) = default;
  Grammar& operator=(Grammar&&) = default;

  GrammarNode* add(GrammarNode n);
  GrammarNode* literal(std::string text, bool json);
  GrammarNode* any_of(std::vector<const GrammarNode*> alternatives);
  GrammarNode* seq(std::vector<const GrammarNode*> parts);
  // A JSON value of any type (objects with any keys), built once per grammar.
  const GrammarNode* any_json();
  // Computes min_len of every node (a fixed point, so cycles are fine) and checks each node admits some value.
  void finalize();

  const GrammarNode* root = nullptr;
  size_t size() const { return nodes_.size(); }
  const GrammarNode& node(size_t id) const { return *nodes_[id]; }

 private:
  std::vector<std::unique_ptr<GrammarNode>> nodes_;
  const GrammarNode* any_ = nullptr;
};

// The shortest serialisation of every node (by id) when a literal costs literal_cost(node) (bytes, or tokens
// once a vocabulary is known); other bytes cost one each. A fixed point, so cycles are fine; unreachable: 2^50.
std::vector<int64_t> grammar_min_lengths(const Grammar& g, const std::function<int64_t(const GrammarNode&)>& literal_cost);

struct SchemaOptions {
  // strict: a keyword the decoder cannot enforce (minimum, pattern, format, oneOf...) is an error; otherwise it is
  // ignored (the output still has the right shape but may break that keyword).
  bool strict = true;
  int64_t max_nodes = 4096;          // schema size limits (hostile input)
  int64_t max_depth = 32;
  int64_t max_enum = 256;
  int64_t max_any_of = 32;
  int64_t max_properties = 64;       // per object
  int64_t max_string_bytes = 16384;  // any single description / enum value / key
};

// Compiles a JSON schema into `g` (adding nodes) and returns its root node. Throws baleine::Error with a message
// naming the JSON pointer of the bad part, fit for an HTTP 400 reply ("schema at /properties/x: ...").
// Supported: type (one or a list), properties, required, additionalProperties (false / true / schema), enum,
// const, items, minItems, maxItems, anyOf, $ref to "#/$defs/..." or "#/definitions/..." (not recursive), and the
// annotations title, description, default, examples, $schema, $id, $comment.
const GrammarNode* compile_json_schema(Grammar& g, const nlohmann::json& schema, const SchemaOptions& options = {});
// A grammar whose root is the given schema (finalized).
Grammar json_schema_grammar(const nlohmann::json& schema, const SchemaOptions& options = {});
// response_format json_object: any JSON object.
Grammar json_object_grammar();
// Empty string when the schema compiles, else the error message (for HTTP 400 replies).
std::string validate_json_schema(const nlohmann::json& schema, const SchemaOptions& options = {});

}  // namespace baleine::agent
