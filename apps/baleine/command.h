// apps/baleine/command.h — how a subcommand plugs into the `baleine` executable.
// defines: Command, register_command, commands
//
// Each cmd_<name>.cpp defines a static CommandRegistration; main() builds the CLI11 tree from the list,
// so adding a subcommand touches exactly one new file.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace baleine::app {

struct Command {
  std::string name;
  std::string description;
  // Adds options to `sub` and returns the action run when the subcommand is chosen (exit code).
  std::function<std::function<int()>(CLI::App& sub)> setup;
};

std::vector<Command>& commands();

struct CommandRegistration {
  explicit CommandRegistration(Command c) { commands().push_back(std::move(c)); }
};

// Parses "1,2,3" (spaces allowed) into ints; throws baleine::Error on anything else.
std::vector<int32_t> parse_int_list(const std::string& text, const std::string& flag);

}  // namespace baleine::app
