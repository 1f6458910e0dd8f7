// The chat plumbing end to end: a model's text assets (tokenizer + template + bos/eos) render
// every template fixture exactly; `whale render` / `whale tokenize` honour their CLI contracts;
// a Session reuses its cached prefix without changing the logits.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "fixtures.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "text/chat.h"

namespace whale {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

fs::path fixtures() { return fs::path(test::fixtures_dir()); }

const TextAssets& assets(const std::string& tokenizer_folder) {
  static std::map<std::string, TextAssets> cache;
  auto it = cache.find(tokenizer_folder);
  if (it == cache.end())
    it = cache.emplace(tokenizer_folder, load_text_assets((fixtures() / "tokenizers" / tokenizer_folder).string())).first;
  return it->second;
}

std::vector<ojson> template_cases() {
  std::vector<ojson> out;
  for (auto& e : fs::directory_iterator(fixtures() / "templates")) {
    if (e.path().extension() != ".jsonl") continue;
    std::ifstream in(e.path());
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(ojson::parse(line));
  }
  return out;
}

TEST(Chat, EveryTemplateFixtureRendersExactlyFromTheTokenizerFolder) {
  auto cases = template_cases();
  ASSERT_GT(cases.size(), 300u);
  int checked = 0;
  for (auto& c : cases) {
    const TextAssets& text = assets(c["tokenizer"]);
    // The fixture's bos/eos are what the tokenizer folder's config names (null = not passed).
    EXPECT_EQ(text.bos_token.has_value(), !c["bos_token"].is_null());
    if (text.bos_token && !c["bos_token"].is_null()) {
      EXPECT_EQ(*text.bos_token, c["bos_token"].get<std::string>());
    }
    ChatRequest req;
    req.messages = c["messages"];
    req.tools = c["tools"];
    req.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    const std::string tmpl = test::read_text((fixtures() / "templates" / c["template"].get<std::string>()).string());
    EXPECT_EQ(render_chat(text, req, tmpl), c["text"].get<std::string>()) << c["template"] << " " << c["category"];
    ++checked;
  }
  EXPECT_EQ(checked, int(cases.size()));
}

TEST(Chat, ModelOwnTemplateFromTokenizerConfig) {
  // tokenizers/deepseek-v3/tokenizer_config.json carries DeepSeek-V3's template.
  const TextAssets& text = assets("deepseek-v3");
  ASSERT_FALSE(text.chat_template.empty());
  EXPECT_EQ(text.chat_template, test::read_text((fixtures() / "templates" / "deepseek-v3.jinja").string()));
  ChatRequest req;
  req.messages = ojson::parse(R"([{"role":"user","content":"Hi"}])");
  const std::string out = render_chat(text, req);
  EXPECT_NE(out.find("<\xef\xbd\x9cUser\xef\xbd\x9c>Hi"), std::string::npos) << out;
  // Stop tokens include the eos of the family.
  EXPECT_FALSE(text.stop_tokens.empty());
}

TEST(Chat, RequestsAreValidated) {
  EXPECT_THROW(parse_chat_request("{", "r.json"), Error);
  EXPECT_THROW(parse_chat_request("[]", "r.json"), Error);
  EXPECT_THROW(parse_chat_request(R"({"messages": 3})", "r.json"), Error);
  EXPECT_THROW(parse_chat_request(R"({"messages": [{"content": "x"}]})", "r.json"), Error);
  EXPECT_THROW(parse_chat_request(R"({"messages": [], "add_generation_prompt": "yes"})", "r.json"), Error);
  EXPECT_NO_THROW(parse_chat_request(R"({"messages": [], "tools": null, "extra": 1})", "r.json"));
  EXPECT_FALSE(parse_chat_request(R"({"messages": []})", "r.json").add_generation_prompt);
  EXPECT_TRUE(parse_chat_request(R"({"messages": [], "add_generation_prompt": true})", "r.json").add_generation_prompt);
  const TextAssets& text = assets("deepseek-v3");
  ChatRequest req;
  EXPECT_THROW(render_chat(text, req, "{% if %}"), Error);
  try {
    render_chat(text, req, "line one\n{{ messages | nosuchfilter }}");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nosuchfilter"), std::string::npos) << e.what();
  }
}

struct Cmd {
  int status;
  std::string out, err;
};

Cmd run_whale(const std::string& args, const std::string& stdin_text) {
  const fs::path dir = fs::temp_directory_path() / ("whale_chat_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "in.txt", std::ios::binary) << stdin_text;
  const std::string cmd = std::string(WHALE_BIN) + " " + args + " <" + (dir / "in.txt").string() +
                          " >" + (dir / "out.txt").string() + " 2>" + (dir / "err.txt").string();
  int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : 128, test::read_text((dir / "out.txt").string()),
          test::read_text((dir / "err.txt").string())};
}

TEST(ChatCli, RenderPrintsExactlyTheTemplateOutput) {
  auto cases = template_cases();
  const fs::path req = fs::temp_directory_path() / ("whale_req_" + std::to_string(::getpid()) + ".json");
  int n = 0;
  for (auto& c : cases) {
    if (c["template"] != "deepseek-r1.jinja" && c["template"] != "qwen2.5.jinja") continue;
    if (++n > 6) break;
    ojson r = {{"messages", c["messages"]}, {"tools", c["tools"]}, {"add_generation_prompt", c["add_generation_prompt"]}};
    std::ofstream(req) << r.dump();
    Cmd out = run_whale("render -m " + (fixtures() / "tokenizers" / c["tokenizer"].get<std::string>()).string() +
                        " --request " + req.string() + " --template " +
                        (fixtures() / "templates" / c["template"].get<std::string>()).string(), "");
    ASSERT_EQ(out.status, 0) << out.err;
    EXPECT_EQ(out.out, c["text"].get<std::string>());
  }
  fs::remove(req);
}

TEST(ChatCli, TokenizeRoundTrip) {
  const std::string tok = (fixtures() / "tokenizers" / "qwen").string();
  Cmd enc = run_whale("tokenize -m " + tok, "Hello world");
  ASSERT_EQ(enc.status, 0) << enc.err;
  EXPECT_EQ(enc.out, "9707,1879\n");
  Cmd dec = run_whale("tokenize -m " + tok + " --decode", "9707,1879\n");
  ASSERT_EQ(dec.status, 0) << dec.err;
  EXPECT_EQ(dec.out, "Hello world");
  Cmd bad = run_whale("tokenize -m " + tok, std::string("bad \xff utf8"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("UTF-8"), std::string::npos) << bad.err;
  Cmd bad_ids = run_whale("tokenize -m " + tok + " --decode", "1,x");
  EXPECT_NE(bad_ids.status, 0);
}

TEST(Session, PrefixReuseKeepsLogits) {
  auto model = load_model((fixtures() / "models" / "deepseek-v3-tiny" / "model-bf16.gguf").string());
  const int64_t V = model->config().n_vocab;
  std::vector<int32_t> turn1 = {10, 20, 30, 40}, turn2 = {10, 20, 30, 40, 50, 60, 70};
  Session s(*model, 32);
  s.prefill(turn1);
  const float* l = s.prefill(turn2);
  EXPECT_EQ(s.last_prefill_computed(), 3);
  std::vector<float> reused(l, l + V);
  Session fresh(*model, 32);
  const float* f = fresh.prefill(turn2);
  for (int64_t i = 0; i < V; ++i) EXPECT_NEAR(reused[i], f[i], 1e-4f);
  // A prompt that diverges early recomputes from the divergence.
  s.prefill({10, 99, 30});
  EXPECT_EQ(s.last_prefill_computed(), 2);
  EXPECT_THROW(s.prefill(std::vector<int32_t>(33, 1)), Error);
}

}  // namespace
}  // namespace whale
