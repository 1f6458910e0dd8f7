// Training batches in the fixture format: {"tokens": [[...], ...], "targets": [[...], ...]},
// B sequences of T ids each (targets[b][t] = the token after tokens[b][t]).
#pragma once

#include <string>

#include "train/train_model.h"

namespace whale::train {

// Throws whale::Error naming the file for bad JSON, ragged rows or non-integer ids.
Batch read_batch_json(const std::string& path);

}  // namespace whale::train
