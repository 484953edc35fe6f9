// Package merge combines checkpoints at the weight level, streaming tensor by
// tensor: linear soups, task arithmetic, TIES, DARE, SLERP, model stock, ExPO,
// and the dev-scored searches (greedy soup, Model Swarms, LoraHub).
package merge
