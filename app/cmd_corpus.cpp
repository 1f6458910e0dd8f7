// whale corpus -o DIR [--n N] [--seed S] [--max-digits D] [--max-mul-digits D]
//              [--tokenizer TOKDIR | --vocab-size V]
//   The synthetic reasoning corpus (train/corpus.h) as training data in DIR:
//     corpus.jsonl           one problem per line: {"question", "reasoning", "answer", "text"}
//                            where text is the R1 chat-format document
//     tokenizer.json,        the tokenizer: copied from --tokenizer, or trained on the corpus
//     tokenizer_config.json  (byte-level BPE, --vocab-size tokens, default 512)
//     tokens.bin             every document's ids back to back (uint32 LE), for `whale train`
//
// whale train-tokenizer -o DIR --vocab-size V FILE...
//   Trains a byte-level BPE tokenizer with DeepSeek-R1's special tokens and chat template
//   (text/bpe_trainer.h) on text files (a .jsonl file contributes each line's "text" field)
//   and writes DIR/tokenizer.json and DIR/tokenizer_config.json.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "commands.h"
#include "core/error.h"
#include "file_io.h"
#include "text/bpe_trainer.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "train/corpus.h"
#include "train/data_loader.h"

namespace whale::app {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct CorpusArgs {
  std::string out, tokenizer;
  int64_t n = 10000, vocab_size = 512;
  uint64_t seed = 1;
  int max_digits = 3, max_mul_digits = 2;
};

struct TokenizerArgs {
  std::string out;
  int64_t vocab_size = 512;
  std::vector<std::string> files;
};

void write_tokenizer(const TrainedBpe& bpe, const std::string& dir) {
  fs::create_directories(dir);
  train::write_file_atomic(dir + "/tokenizer.json", bpe.tokenizer_json);
  train::write_file_atomic(dir + "/tokenizer_config.json", bpe.tokenizer_config_json);
  fmt::print(stderr, "train-tokenizer: {} tokens ({} merges) -> {}/tokenizer.json\n", bpe.vocab_size,
             bpe.n_merges, dir);
}

void run_corpus(const CorpusArgs& a) {
  if (a.n < 1) fail("--n must be at least 1, not {}", a.n);
  fs::create_directories(a.out);
  const train::CorpusOptions opt{.seed = a.seed, .max_digits = a.max_digits, .max_mul_digits = a.max_mul_digits};
  std::vector<std::string> docs;
  std::string jsonl;
  for (int64_t i = 0; i < a.n; ++i) {
    const train::Problem p = train::make_problem(opt, i);
    docs.push_back(train::format_r1(p));
    jsonl += json{{"question", p.question}, {"reasoning", p.reasoning}, {"answer", p.answer}, {"text", docs.back()}}.dump();
    jsonl += '\n';
  }
  train::write_file_atomic(a.out + "/corpus.jsonl", jsonl);

  if (!a.tokenizer.empty()) {
    const fs::path src = fs::is_directory(a.tokenizer) ? fs::path(a.tokenizer) : fs::path(a.tokenizer).parent_path();
    if (fs::absolute(src) != fs::absolute(a.out))
      for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
        train::write_file_atomic(a.out + "/" + f, read_file((src / f).string()));
  } else {
    write_tokenizer(train_bpe(docs, BpeTrainerOptions{.vocab_size = a.vocab_size}), a.out);
  }
  const auto tok = Tokenizer::from_hf(a.out);
  std::vector<int32_t> ids;
  for (const std::string& d : docs) tok->encode_into(d, /*add_special_tokens=*/false, ids);  // BOS is in the text
  train::TokenDataset::save(a.out, ids);
  fmt::print(stderr, "corpus: {} problems, {} tokens (vocabulary {}) -> {}\n", a.n, ids.size(), tok->n_vocab(), a.out);
}

void run_train_tokenizer(const TokenizerArgs& a) {
  std::vector<std::string> texts;
  for (const std::string& f : a.files) {
    const std::string body = read_file(f);
    if (!f.ends_with(".jsonl")) {
      texts.push_back(body);
      continue;
    }
    std::istringstream in(body);
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      if (line.empty()) continue;
      const json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string())
        fail("{}:{}: expected a JSON object with a \"text\" string", f, n);
      texts.push_back(j["text"].get<std::string>());
    }
  }
  write_tokenizer(train_bpe(texts, BpeTrainerOptions{.vocab_size = a.vocab_size}), a.out);
}

}  // namespace

void register_corpus(CLI::App& app) {
  auto a = std::make_shared<CorpusArgs>();
  CLI::App* cmd = app.add_subcommand("corpus", "write the synthetic reasoning corpus (R1 chat format) as training data");
  cmd->add_option("-o,--output", a->out, "output folder")->required();
  cmd->add_option("--n", a->n, "number of problems")->capture_default_str();
  cmd->add_option("--seed", a->seed, "random seed")->capture_default_str();
  cmd->add_option("--max-digits", a->max_digits, "digits of + - and comparison operands")->capture_default_str();
  cmd->add_option("--max-mul-digits", a->max_mul_digits, "digits of the second factor of *")->capture_default_str();
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer folder to use (default: train one on the corpus)");
  cmd->add_option("--vocab-size", a->vocab_size, "size of the tokenizer trained on the corpus")->capture_default_str();
  cmd->callback([a] { run_corpus(*a); });

  auto t = std::make_shared<TokenizerArgs>();
  CLI::App* tc = app.add_subcommand("train-tokenizer", "train a byte-level BPE tokenizer with R1's special tokens");
  tc->add_option("-o,--output", t->out, "output folder (tokenizer.json, tokenizer_config.json)")->required();
  tc->add_option("--vocab-size", t->vocab_size, "vocabulary size")->capture_default_str();
  tc->add_option("files", t->files, "text files (.jsonl: each line's \"text\")")->required()->check(CLI::ExistingFile);
  tc->callback([t] { run_train_tokenizer(*t); });
}

}  // namespace whale::app
