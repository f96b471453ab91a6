// baleine plot --metrics FILE.jsonl [--y loss,val_loss] [--x step] --out FILE.svg: line charts of training metrics.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>

#include <nlohmann/json.hpp>

#include "apps/baleine/command.h"
#include "core/check.h"

namespace baleine::app {
namespace {

struct PlotArgs {
  std::vector<std::string> metrics_files;
  std::string y = "loss,val_loss", x = "step", out, title;
  bool log_x = false;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

int run_plot(const PlotArgs& a) {
  struct Series { std::string name; std::vector<std::pair<double, double>> pts; };
  std::vector<Series> series;
  const auto ys = split(a.y);
  BALEINE_CHECK(!ys.empty(), "--y: no metric names");
  for (const auto& file : a.metrics_files) {
    std::ifstream in(file);
    BALEINE_CHECK(in.good(), "{}: cannot open", file);
    std::map<std::string, Series> by_metric;
    int line_no = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      if (line.empty()) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        BALEINE_FAIL("{}:{}: not a JSON object", file, line_no);
      }
      if (!j.contains(a.x) || !j[a.x].is_number()) continue;
      for (const auto& y : ys)
        if (j.contains(y) && j[y].is_number()) by_metric[y].pts.push_back({j[a.x].get<double>(), j[y].get<double>()});
    }
    for (const auto& y : ys)
      if (!by_metric[y].pts.empty())
        series.push_back({a.metrics_files.size() > 1 ? file + ": " + y : y, std::move(by_metric[y].pts)});
  }
  BALEINE_CHECK(!series.empty(), "no '{}' values against '{}' in the metrics", a.y, a.x);
  double x0 = std::numeric_limits<double>::max(), x1 = -x0, y0 = x0, y1 = -x0;
  auto tx = [&](double v) { return a.log_x ? std::log10(std::max(v, 1e-300)) : v; };
  for (auto& s : series)
    for (auto [x, y] : s.pts) x0 = std::min(x0, tx(x)), x1 = std::max(x1, tx(x)), y0 = std::min(y0, y), y1 = std::max(y1, y);
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double W = 800, H = 480, L = 70, R = 20, T = 40, B = 50;
  auto px = [&](double x) { return L + (tx(x) - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"24\" font-size=\"15\">{}</text>\n",
      W, H, L, a.title.empty() ? a.y + " vs " + a.x : a.title);
  for (int i = 0; i <= 5; ++i) {  // grid and tick labels
    double yv = y0 + (y1 - y0) * i / 5, xv = x0 + (x1 - x0) * i / 5;
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>", L, py(yv), W - R, py(yv));
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.4g}</text>\n", L - 6, py(yv) + 4, yv);
    double xlabel = a.log_x ? std::pow(10, xv) : xv;
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.4g}</text>\n", L + (xv - x0) / (x1 - x0) * (W - L - R), H - B + 18, xlabel);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}{}</text>\n", (L + W - R) / 2, H - 10, a.x, a.log_x ? " (log)" : "");
  for (size_t s = 0; s < series.size(); ++s) {
    std::string pts;
    for (auto [x, y] : series[s].pts) pts += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    const char* c = colors[s % 6];
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" points=\"{}\"/>\n", c, pts);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>\n", W - R - 220, T + 16 * (double(s) + 1), c, series[s].name);
  }
  svg += "</svg>\n";
  std::ofstream out(a.out, std::ios::binary);
  BALEINE_CHECK(out.good(), "{}: cannot write", a.out);
  out << svg;
  BALEINE_CHECK(out.good(), "{}: write failed", a.out);
  fmt::print("wrote {} ({} series)\n", a.out, series.size());
  return 0;
}

CommandRegistration reg{{"plot", "Draw metrics (JSONL from train/grpo) as an SVG line chart",
                         [](CLI::App& sub) -> std::function<int()> {
                           auto a = std::make_shared<PlotArgs>();
                           sub.add_option("--metrics", a->metrics_files, "metrics.jsonl file(s)")->required();
                           sub.add_option("--y", a->y, "Comma-separated metric names (default loss,val_loss)");
                           sub.add_option("--x", a->x, "Metric on the x axis (default step)");
                           sub.add_flag("--log-x", a->log_x, "Logarithmic x axis");
                           sub.add_option("--title", a->title, "Chart title");
                           sub.add_option("--out", a->out, "Output .svg file")->required();
                           return [a] { return run_plot(*a); };
                         }}};

}  // namespace
}  // namespace baleine::app
