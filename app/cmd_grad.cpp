// whale grad -m HF_DIR --batch FILE.json -o GRADS.safetensors: one forward + backward of the
// training engine. Prints loss_main, loss_mtp and loss_total lines on stdout (and loss_aux with
// --seq-aux-alpha > 0) and writes d loss_total / d tensor (F32, Hugging Face names) for every
// trainable tensor.
#include <fmt/format.h>

#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "formats/safetensors_writer.h"
#include "train/batch_json.h"
#include "train/train_model.h"

namespace whale::app {

namespace {

struct GradArgs {
  std::string model, batch, out;
  // DeepSeek-V3's MTP loss weight for the first 10T training tokens (report §4.2), and the
  // value the training fixtures use.
  float mtp_lambda = 0.3f;
  double seq_aux_alpha = 0;  // sequence-wise balance loss, off by default (as in the fixtures)
  int threads = 0;
};

void run_grad(const GradArgs& a) {
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  if (!(a.mtp_lambda >= 0)) fail("--mtp-lambda must be a non-negative number");
  const train::Batch batch = train::read_batch_json(a.batch);
  auto model = train::load_train_model(a.model);
  model->set_seq_aux_alpha(a.seq_aux_alpha);
  const train::LossReport rep = model->forward_backward(batch, a.mtp_lambda);
  std::vector<F32TensorView> grads;
  for (const train::Param& p : model->params())
    if (p.trainable) grads.push_back({p.name, p.shape, p.grad.data()});
  write_safetensors_f32(a.out, grads);
  fmt::print("loss_main {:.9g}\nloss_mtp {:.9g}\nloss_total {:.9g}\n", rep.loss_main,
             rep.loss_mtp, rep.loss_total);
  if (a.seq_aux_alpha > 0) fmt::print("loss_aux {:.9g}\n", rep.loss_aux);
}

}  // namespace

void register_grad(CLI::App& app) {
  auto a = std::make_shared<GradArgs>();
  CLI::App* cmd = app.add_subcommand("grad", "loss and gradients of a training batch");
  cmd->add_option("-m,--model", a->model, "Hugging Face folder (config.json + safetensors)")->required();
  cmd->add_option("--batch", a->batch, "batch JSON: {\"tokens\": [[...]], \"targets\": [[...]]}")->required();
  cmd->add_option("-o,--output", a->out, "gradients (safetensors, F32)")->required();
  cmd->add_option("--mtp-lambda", a->mtp_lambda, "weight of the MTP loss (default 0.3)");
  cmd->add_option("--seq-aux-alpha", a->seq_aux_alpha,
                  "α of the sequence-wise balance loss, added to loss_total (default 0: off)");
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->callback([a] { run_grad(*a); });
}

}  // namespace whale::app
