// baleine keys create|list|revoke [--db FILE] (before or after the action): API keys for `baleine serve`, stored as SHA-256 hashes in SQLite.
// The secret is printed once, at creation.
#include <fmt/format.h>

#include <ctime>

#include "apps/baleine/command.h"
#include "server/store.h"

namespace baleine::app {
namespace {

struct KeysArgs {
  std::string db, name, target;
  int64_t rpm = 0, tpm = 0;
  bool usage = false;
};

std::string date(int64_t t) {
  std::time_t tt = std::time_t(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::gmtime(&tt));
  return buf;
}

CommandRegistration reg{{"keys", "Manage API keys for `baleine serve` (create, list, revoke)",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<KeysArgs>();
                           sub.require_subcommand(1);
                           sub.add_option("--db", a->db, "SQLite database of the server (default: $BALEINE_DB, else ~/.local/share/baleine/baleine.db, as `baleine serve`)");
                           auto* create = sub.add_subcommand("create", "Create a key (the secret is shown once)");
                           create->add_option("name", a->name, "A name for the key")->required();
                           create->add_option("--rpm", a->rpm, "Requests per minute (0: server default)")->check(CLI::NonNegativeNumber);
                           create->add_option("--tpm", a->tpm, "Tokens per minute (0: server default)")->check(CLI::NonNegativeNumber);
                           auto* list = sub.add_subcommand("list", "List keys (never their secrets)");
                           list->add_flag("--usage", a->usage, "Also show each key's totals from the usage ledger");
                           auto* revoke = sub.add_subcommand("revoke", "Revoke a key by id, name or prefix");
                           revoke->add_option("key", a->target, "Key id, name or prefix")->required();
                           // --db may come before or after the action (`keys create NAME --db X`).
                           for (auto* c : {create, list, revoke}) c->fallthrough();
                           return [a, create, list, revoke]() -> int {
                             if (a->db.empty()) a->db = server::default_db_path();
                             server::Store store(a->db);
                             if (create->parsed()) {
                               server::ApiKey k;
                               std::string secret = store.create_key(a->name, a->rpm, a->tpm, &k);
                               fmt::print("{}\n", secret);
                               fmt::print(stderr, "created key {} '{}' (shown once; only its SHA-256 is stored in {})\n", k.id, k.name, a->db);
                               return 0;
                             }
                             if (list->parsed()) {
                               fmt::print("{:>4}  {:<20} {:<8} {:<20} {:>6} {:>8}  {}\n", "id", "name", "prefix", "created (UTC)", "rpm", "tpm", "state");
                               for (const auto& k : store.list_keys()) {
                                 fmt::print("{:>4}  {:<20} {:<8} {:<20} {:>6} {:>8}  {}\n", k.id, k.name, k.prefix, date(k.created), k.rpm, k.tpm,
                                            k.revoked ? "revoked" : "active");
                                 if (a->usage) {
                                   int64_t req = 0, p = 0, c = 0;
                                   double cost = 0;
                                   for (const auto& e : store.ledger(k.id, 1 << 30)) { ++req; p += e.prompt_tokens; c += e.completion_tokens; cost += e.cost_usd; }
                                   fmt::print("      {} requests, {} prompt + {} completion tokens, ${:.6f}\n", req, p, c, cost);
                                 }
                               }
                               return 0;
                             }
                             if (store.revoke_key(a->target)) {
                               fmt::print("revoked {}\n", a->target);
                               return 0;
                             }
                             fmt::print(stderr, "error: no active key matches '{}'\n", a->target);
                             return 1;
                           };
                         }}};

}  // namespace
}  // namespace baleine::app
