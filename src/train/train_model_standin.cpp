// TEMPORARY STAND-IN — the integrator deletes this file when the gradient engine (branch of
// helper "grad": load_train_model / init_train_model in train_model.cpp) is merged. It exists
// only so this branch links; nothing may rely on it.
#include "core/error.h"
#include "train/train_model.h"

namespace whale::train {

std::unique_ptr<TrainModel> load_train_model(const std::string& hf_dir) {
  fail("{}: the training model is not built yet (stand-in; needs the gradient engine)", hf_dir);
}

std::unique_ptr<TrainModel> init_train_model(const ModelConfig&, uint64_t) {
  fail("the training model is not built yet (stand-in; needs the gradient engine)");
}

}  // namespace whale::train
