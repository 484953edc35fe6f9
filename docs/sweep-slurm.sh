#!/bin/bash
# A moco sweep as a Slurm job array: each array task runs one shard of the
# sweep (items are assigned by a hash of method, dataset and item id, so the
# tasks never overlap), and a final job merges the shards and writes the report.
#
#   sbatch docs/sweep-slurm.sh                  # 8 shards
#   # when all finished (or: sbatch --dependency=afterok:JOBID ...):
#   moco sweep merge --out results/skills.jsonl results/skills-results.shard-*-of-8.jsonl
#   moco sweep report results/skills.jsonl --out-dir results/report
#
# The task's array index is its shard; the shard count is SHARDS, not
# Slurm's task count, which for a resubmitted task is 1. A task that is
# preempted or times out resumes where it stopped when resubmitted
# (sbatch --array=3 docs/sweep-slurm.sh): finished items are skipped.
#SBATCH --job-name=moco-sweep
#SBATCH --array=0-7
#SBATCH --cpus-per-task=16
#SBATCH --mem=32G
#SBATCH --time=04:00:00
#SBATCH --output=logs/sweep-%A_%a.log
#SBATCH --requeue

set -euo pipefail
mkdir -p results logs
SHARDS=8 # the --array range above
I=${SLURM_ARRAY_TASK_ID}
# One output file per shard; a requeued task appends to its own file.
exec moco sweep examples/skills-sweep.yaml --shard "${I}/${SHARDS}" \
  --out "results/skills-results.shard-${I}-of-${SHARDS}.jsonl" \
  --workers "${SLURM_CPUS_PER_TASK}"
