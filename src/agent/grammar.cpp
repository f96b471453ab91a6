#include "agent/grammar.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "core/check.h"

namespace baleine::agent {

using nlohmann::json;

namespace {

constexpr int64_t kInf = int64_t(1) << 50;
int64_t add_sat(int64_t a, int64_t b) { return std::min(kInf, a + b); }

// Keywords the decoder cannot enforce: an error in strict mode, ignored otherwise.
const std::set<std::string> kUnsupported = {
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "pattern", "format", "minLength",
    "maxLength", "oneOf", "allOf", "not", "if", "then", "else", "patternProperties", "propertyNames",
    "minProperties", "maxProperties", "uniqueItems", "contains", "prefixItems", "dependentRequired",
    "dependentSchemas", "unevaluatedProperties", "unevaluatedItems", "minContains", "maxContains"};

std::string encode(const json& v, const std::string& where) {
  try {
    return v.dump();
  } catch (const json::exception&) {
    BALEINE_FAIL("schema at {}: a string is not valid UTF-8", where.empty() ? "/" : where);
  }
}

bool value_has_type(const json& v, const std::string& t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "number") return v.is_number();
  if (t == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == double(int64_t(v.get<double>())));
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  return false;
}

class SchemaCompiler {
 public:
  SchemaCompiler(Grammar& g, const json& root, const SchemaOptions& o) : g_(g), root_(root), o_(o) {}

  const GrammarNode* compile(const json& s, const std::string& where, int64_t depth) {
    const std::string at = where.empty() ? "/" : where;
    BALEINE_CHECK(depth <= o_.max_depth, "schema at {}: nested deeper than {} levels", at, o_.max_depth);
    BALEINE_CHECK(int64_t(g_.size()) <= o_.max_nodes, "schema is too large (more than {} nodes)", o_.max_nodes);
    if (s.is_boolean()) {
      BALEINE_CHECK(s.get<bool>(), "schema at {}: 'false' admits no value", at);
      return g_.any_json();
    }
    BALEINE_CHECK(s.is_object(), "schema at {}: must be an object or a boolean, got {}", at, s.type_name());
    for (const char* text_key : {"description", "title", "$comment"})
      if (s.contains(text_key)) {
        BALEINE_CHECK(s[text_key].is_string(), "schema at {}: '{}' must be a string", at, text_key);
        BALEINE_CHECK(int64_t(s[text_key].get_ref<const std::string&>().size()) <= o_.max_string_bytes,
                      "schema at {}: '{}' is longer than {} bytes", at, text_key, o_.max_string_bytes);
      }
    for (auto& [k, v] : s.items())
      if (kUnsupported.count(k))
        BALEINE_CHECK(!o_.strict, "schema at {}: keyword '{}' is not supported by constrained decoding", at, k);

    if (s.contains("$ref")) return ref(s, at, depth);
    if (s.contains("const")) return literal(s["const"], s, at);
    if (s.contains("enum")) return enumeration(s, at);
    if (s.contains("anyOf")) {
      const json& alts = s["anyOf"];
      BALEINE_CHECK(alts.is_array() && !alts.empty(), "schema at {}: 'anyOf' must be a non-empty array", at);
      BALEINE_CHECK(int64_t(alts.size()) <= o_.max_any_of, "schema at {}: 'anyOf' has more than {} alternatives", at, o_.max_any_of);
      BALEINE_CHECK(!o_.strict || !s.contains("type"), "schema at {}: 'anyOf' next to 'type' is not supported", at);
      std::vector<const GrammarNode*> nodes;
      for (size_t i = 0; i < alts.size(); ++i) nodes.push_back(compile(alts[i], where + "/anyOf/" + std::to_string(i), depth + 1));
      return g_.any_of(std::move(nodes));
    }
    if (s.contains("type")) {
      const json& t = s["type"];
      if (t.is_string()) return typed(s, t.get<std::string>(), where, depth);
      BALEINE_CHECK(t.is_array() && !t.empty(), "schema at {}: 'type' must be a string or a non-empty array", at);
      std::vector<const GrammarNode*> nodes;
      std::set<std::string> seen;
      for (const auto& ti : t) {
        BALEINE_CHECK(ti.is_string(), "schema at {}: 'type' entries must be strings", at);
        BALEINE_CHECK(seen.insert(ti.get<std::string>()).second, "schema at {}: 'type' lists '{}' twice", at, ti.get<std::string>());
        nodes.push_back(typed(s, ti.get<std::string>(), where, depth));
      }
      return nodes.size() == 1 ? nodes[0] : g_.any_of(std::move(nodes));
    }
    if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties"))
      return typed(s, "object", where, depth);
    if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) return typed(s, "array", where, depth);
    return g_.any_json();
  }

 private:
  const GrammarNode* ref(const json& s, const std::string& at, int64_t depth) {
    BALEINE_CHECK(s["$ref"].is_string(), "schema at {}: '$ref' must be a string", at);
    const std::string r = s["$ref"].get<std::string>();
    std::string name;
    const json* defs = nullptr;
    for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
      const std::string p = prefix;
      if (r.rfind(p, 0) == 0) {
        name = r.substr(p.size());
        const std::string key = p.substr(2, p.size() - 3);
        if (root_.is_object() && root_.contains(key) && root_[key].is_object()) defs = &root_[key];
      }
    }
    BALEINE_CHECK(!name.empty(), "schema at {}: only local references '#/$defs/NAME' or '#/definitions/NAME' are supported, got '{}'", at, r);
    BALEINE_CHECK(defs && defs->contains(name), "schema at {}: '$ref' '{}' points at no definition", at, r);
    BALEINE_CHECK(std::find(ref_stack_.begin(), ref_stack_.end(), r) == ref_stack_.end(),
                  "schema at {}: recursive '$ref' '{}' is not supported", at, r);
    ref_stack_.push_back(r);
    const GrammarNode* n = compile((*defs)[name], r.substr(1), depth + 1);
    ref_stack_.pop_back();
    return n;
  }

  const GrammarNode* literal(const json& v, const json& s, const std::string& at) {
    std::string text = encode(v, at);
    BALEINE_CHECK(int64_t(text.size()) <= o_.max_string_bytes, "schema at {}: value longer than {} bytes", at, o_.max_string_bytes);
    if (s.contains("type") && s["type"].is_string())
      BALEINE_CHECK(value_has_type(v, s["type"].get<std::string>()), "schema at {}: value {} does not have type '{}'", at,
                    text.substr(0, 80), s["type"].get<std::string>());
    return g_.literal(std::move(text), true);
  }

  const GrammarNode* enumeration(const json& s, const std::string& at) {
    const json& e = s["enum"];
    BALEINE_CHECK(e.is_array() && !e.empty(), "schema at {}: 'enum' must be a non-empty array", at);
    BALEINE_CHECK(int64_t(e.size()) <= o_.max_enum, "schema at {}: 'enum' has more than {} values", at, o_.max_enum);
    std::vector<const GrammarNode*> nodes;
    std::set<std::string> seen;
    for (const auto& v : e) {
      const GrammarNode* n = literal(v, s, at);
      if (seen.insert(n->text).second) nodes.push_back(n);
    }
    return nodes.size() == 1 ? nodes[0] : g_.any_of(std::move(nodes));
  }

  const GrammarNode* typed(const json& s, const std::string& t, const std::string& where, int64_t depth) {
    const std::string at = where.empty() ? "/" : where;
    GrammarNode n;
    if (t == "string") n.kind = GrammarNodeKind::String;
    else if (t == "number") n.kind = GrammarNodeKind::Number;
    else if (t == "integer") n.kind = GrammarNodeKind::Integer;
    else if (t == "null") return g_.literal("null", true);
    else if (t == "boolean") return g_.any_of({g_.literal("true", true), g_.literal("false", true)});
    else if (t == "object") return object(s, where, depth);
    else if (t == "array") return array(s, where, depth);
    else BALEINE_FAIL("schema at {}: unknown type '{}' (object, array, string, number, integer, boolean, null)", at, t);
    return g_.add(n);
  }

  const GrammarNode* object(const json& s, const std::string& where, int64_t depth) {
    const std::string at = where.empty() ? "/" : where;
    GrammarNode n;
    n.kind = GrammarNodeKind::Object;
    if (s.contains("properties")) {
      const json& props = s["properties"];
      BALEINE_CHECK(props.is_object(), "schema at {}: 'properties' must be an object", at);
      BALEINE_CHECK(int64_t(props.size()) <= o_.max_properties, "schema at {}: more than {} properties", at, o_.max_properties);
      for (auto& [k, v] : props.items()) {
        BALEINE_CHECK(int64_t(k.size()) <= o_.max_string_bytes, "schema at {}: a property name is longer than {} bytes", at, o_.max_string_bytes);
        n.keys.push_back(encode(json(k), at));
        n.key_nodes.push_back(g_.literal(n.keys.back(), true));
        n.values.push_back(compile(v, where + "/properties/" + k, depth + 1));
      }
    }
    if (s.contains("required")) {
      const json& req = s["required"];
      BALEINE_CHECK(req.is_array(), "schema at {}: 'required' must be an array of property names", at);
      for (const auto& r : req) {
        BALEINE_CHECK(r.is_string(), "schema at {}: 'required' must be an array of property names", at);
        std::string key = encode(r, at);
        auto it = std::find(n.keys.begin(), n.keys.end(), key);
        BALEINE_CHECK(it != n.keys.end(), "schema at {}: required property {} is not declared in 'properties'", at, key);
        n.required |= uint64_t(1) << (it - n.keys.begin());
      }
    }
    bool closed = false;
    const GrammarNode* additional = nullptr;
    if (s.contains("additionalProperties")) {
      const json& a = s["additionalProperties"];
      if (a.is_boolean()) closed = !a.get<bool>();
      else additional = compile(a, where + "/additionalProperties", depth + 1);
    }
    // Declared properties: only those are generated (a subset of what the schema allows). None declared and not
    // closed: any keys.
    if (n.keys.empty() && !closed) n.generic_value = additional ? additional : g_.any_json();
    return g_.add(std::move(n));
  }

  const GrammarNode* array(const json& s, const std::string& where, int64_t depth) {
    const std::string at = where.empty() ? "/" : where;
    GrammarNode n;
    n.kind = GrammarNodeKind::Array;
    if (s.contains("items")) {
      BALEINE_CHECK(!s["items"].is_array(), "schema at {}: tuple 'items' (an array) is not supported", at);
      n.items = compile(s["items"], where + "/items", depth + 1);
    } else {
      n.items = g_.any_json();
    }
    for (const char* k : {"minItems", "maxItems"})
      if (s.contains(k))
        BALEINE_CHECK(s[k].is_number_unsigned() || (s[k].is_number_integer() && s[k].get<int64_t>() >= 0),
                      "schema at {}: '{}' must be a non-negative integer", at, k);
    n.min_items = s.value("minItems", int64_t(0));
    n.max_items = s.contains("maxItems") ? s["maxItems"].get<int64_t>() : -1;
    BALEINE_CHECK(n.min_items <= 100000, "schema at {}: 'minItems' is larger than 100000", at);
    BALEINE_CHECK(n.max_items < 0 || n.min_items <= n.max_items, "schema at {}: 'minItems' is larger than 'maxItems'", at);
    n.open = g_.literal("[", true);
    n.sep = g_.literal(",", true);
    n.close = g_.literal("]", true);
    return g_.add(std::move(n));
  }

  Grammar& g_;
  const json& root_;
  const SchemaOptions& o_;
  std::vector<std::string> ref_stack_;
};

}  // namespace

GrammarNode* Grammar::add(GrammarNode n) {
  n.id = uint32_t(nodes_.size());
  nodes_.push_back(std::make_unique<GrammarNode>(std::move(n)));
  return nodes_.back().get();
}

GrammarNode* Grammar::literal(std::string text, bool json_context) {
  GrammarNode n;
  n.kind = GrammarNodeKind::Literal;
  n.text = std::move(text);
  n.json = json_context;
  return add(std::move(n));
}

GrammarNode* Grammar::any_of(std::vector<const GrammarNode*> alternatives) {
  GrammarNode n;
  n.kind = GrammarNodeKind::AnyOf;
  n.children = std::move(alternatives);
  n.json = std::all_of(n.children.begin(), n.children.end(), [](const GrammarNode* c) { return c->json; });
  return add(std::move(n));
}

GrammarNode* Grammar::seq(std::vector<const GrammarNode*> parts) {
  GrammarNode n;
  n.kind = GrammarNodeKind::Seq;
  n.json = false;
  n.children = std::move(parts);
  return add(std::move(n));
}

const GrammarNode* Grammar::any_json() {
  if (any_) return any_;
  GrammarNode* any = any_of({});
  GrammarNode obj;
  obj.kind = GrammarNodeKind::Object;
  obj.generic_value = any;
  GrammarNode arr;
  arr.kind = GrammarNodeKind::Array;
  arr.items = any;
  arr.open = literal("[", true);
  arr.sep = literal(",", true);
  arr.close = literal("]", true);
  GrammarNode str, num;
  str.kind = GrammarNodeKind::String;
  num.kind = GrammarNodeKind::Number;
  any->children = {add(std::move(obj)), add(std::move(arr)), add(std::move(str)), add(std::move(num)),
                   literal("true", true), literal("false", true), literal("null", true)};
  any_ = any;
  return any_;
}

std::vector<int64_t> grammar_min_lengths(const Grammar& g, const std::function<int64_t(const GrammarNode&)>& literal_cost) {
  std::vector<int64_t> len(g.size(), kInf);
  auto L = [&](const GrammarNode* n) { return len[n->id]; };
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t id = 0; id < g.size(); ++id) {
      const GrammarNode& n = g.node(id);
      int64_t m = kInf;
      switch (n.kind) {
        case GrammarNodeKind::Literal: m = literal_cost(n); break;
        case GrammarNodeKind::String: m = 2; break;
        case GrammarNodeKind::Number:
        case GrammarNodeKind::Integer: m = 1; break;
        case GrammarNodeKind::Object: {
          m = 2;
          int64_t r = 0;
          for (size_t i = 0; i < n.keys.size(); ++i)
            if (n.required >> i & 1) m = add_sat(m, add_sat(L(n.key_nodes[i]) + 1, L(n.values[i]))), ++r;
          if (r > 1) m = add_sat(m, r - 1);
          break;
        }
        case GrammarNodeKind::Array:
          m = add_sat(L(n.open), L(n.close));
          if (n.min_items > 0) {
            int64_t item = std::min(kInf / (n.min_items + 1), L(n.items));
            m = add_sat(m, add_sat(n.min_items * item, (n.min_items - 1) * std::min(kInf / (n.min_items + 1), L(n.sep))));
          }
          break;
        case GrammarNodeKind::AnyOf:
          for (const auto* c : n.children) m = std::min(m, L(c));
          break;
        case GrammarNodeKind::Seq:
          m = 0;
          for (const auto* c : n.children) m = add_sat(m, L(c));
          break;
      }
      if (m < len[id]) len[id] = m, changed = true;
    }
  }
  return len;
}

void Grammar::finalize() {
  std::vector<int64_t> len = grammar_min_lengths(*this, [](const GrammarNode& n) { return int64_t(n.text.size()); });
  for (auto& n : nodes_) n->min_len = len[n->id];
  BALEINE_CHECK(root, "grammar has no root");
  BALEINE_CHECK(root->min_len < kInf, "schema admits no finite value");
  BALEINE_CHECK(root->min_len <= 1 << 20, "schema's shortest value is longer than 1 MiB ({} bytes)", root->min_len);
}

const GrammarNode* compile_json_schema(Grammar& g, const json& schema, const SchemaOptions& options) {
  SchemaCompiler c(g, schema, options);
  return c.compile(schema, "", 0);
}

Grammar json_schema_grammar(const json& schema, const SchemaOptions& options) {
  Grammar g;
  g.root = compile_json_schema(g, schema, options);
  g.finalize();
  return g;
}

Grammar json_object_grammar() {
  Grammar g;
  GrammarNode obj;
  obj.kind = GrammarNodeKind::Object;
  obj.generic_value = g.any_json();
  g.root = g.add(std::move(obj));
  g.finalize();
  return g;
}

std::string validate_json_schema(const json& schema, const SchemaOptions& options) {
  try {
    json_schema_grammar(schema, options);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

}  // namespace baleine::agent
