#!/usr/bin/env bash
# RL at a larger model size: is the +10 point RL target (issue 17) out of reach because of the demo
# model's size? docs/alignment.md ("What limits RL here") measured that GRPO lifts the reward on the
# prompts it trains on but not on new ones with the 1.8M-parameter `tiny` model. This runs the
# demo's chain with a wider and deeper model, on the demo's own tokenizer, packed text and tasks:
#
#   pretrain -> SFT -> RL with the checker (at each RL learning rate given) -> reward model
#   -> RL with the reward model alone
#
# every stage through `llmpipe` with configs/pipeline.yaml and the overrides below, so what it
# measures is the product's own path (DeepSpeed engine, KV-cache sampler, the stages' reports).
#
#   bash bench/rl_scale.sh NAME D_MODEL N_LAYERS N_HEADS N_KV_HEADS [STEPS_SCALE]
#
# It needs runs/rl_scale_base/03-tokenizer and runs/rl_scale_base/04-pack (copies of a demo run's,
# `make pipeline` makes them under runs/demo) and data/demo (`llmpipe sample-data`). Environment:
# PRETRAIN_LR (1e-3), SFT_LR (1e-3), RL_LRS ("1e-4 3e-5"), PRETRAIN_STEPS (400), SFT_STEPS (400),
# REWARD_STEPS (1000), RL_STEPS (60). Each stage's report.md and wall time go to
# $OUT/NAME.md (OUT defaults to runs/NAME), the stages' logs to runs/NAME/logs; EXTRA holds more `--set` overrides for every stage. Written to run on a lent GPU (bench/RESULTS.md gives the
# device, versions and figures); it runs on a CPU too, slowly.
set -u
NAME=$1 D=$2 L=$3 H=$4 KV=$5 RL_LRS=${RL_LRS:-1e-4 3e-5}
OUT=${OUT:-runs/$NAME}; LOGS=runs/$NAME/logs; mkdir -p "$OUT" "$LOGS"
cp -r runs/rl_scale_base/03-tokenizer runs/rl_scale_base/04-pack "runs/$NAME/"
LLMPIPE=${LLMPIPE:-python3 -m pipelines.cli}
R="$OUT/$NAME.md"
echo "# $NAME: d_model $D, $L layers, $H heads ($KV kv)" > "$R"
stage() {  # stage LABEL FOLDER CMD...
  local label=$1 folder=$2; shift 2
  local t0=$SECONDS
  "$@" ${EXTRA:-} --config configs/pipeline.yaml --run-name "$NAME" --no-progress > "$LOGS/$label.log" 2>&1
  local rc=$?
  printf '\n## %s (exit %s, %s s)\n\n`%s`\n\n' "$label" "$rc" "$((SECONDS - t0))" "$*" >> "$R"
  if [ "$rc" != 0 ]; then tail -20 "$LOGS/$label.log" >> "$R"; return 1; fi
  grep -v '^!\[' "$folder/report.md" | sed 's/^#/###/' >> "$R"
}
M="--set pretrain.model_overrides.d_model=$D --set pretrain.model_overrides.n_layers=$L"
M="$M --set pretrain.model_overrides.n_heads=$H --set pretrain.model_overrides.n_kv_heads=$KV"
RL="--set rl.best_of=0 --set rl.forgetting_samples=0 --set rl.save_every=100000 --set rl.max_steps=${RL_STEPS:-60}"
stage pretrain "runs/$NAME/05-pretrain" $LLMPIPE pretrain $M --set pretrain.lr=${PRETRAIN_LR:-1e-3} \
  --set pretrain.min_lr=${PRETRAIN_MIN_LR:-1e-4} --set pretrain.max_steps=${PRETRAIN_STEPS:-400} || exit 1
stage sft "runs/$NAME/06-sft" $LLMPIPE sft --set sft.lr=${SFT_LR:-1e-3} --set sft.min_lr=${SFT_MIN_LR:-1e-4} \
  --set sft.max_steps=${SFT_STEPS:-400} --set sft.save_every=100000 || exit 1
for lr in $RL_LRS; do
  stage "rl-checker-lr$lr" "runs/$NAME/10-rl-checker-lr$lr" $LLMPIPE rl --output "runs/$NAME/10-rl-checker-lr$lr" $RL \
    --set rl.lr=$lr --set rl.min_lr=$(python3 -c "print($lr / 10)")
done
stage reward "runs/$NAME/08-reward" $LLMPIPE reward --set reward.max_steps=${REWARD_STEPS:-1000} || exit 1
lr=${RL_LRS%% *}
stage rl-reward-model "runs/$NAME/10-rl-reward-model" $LLMPIPE rl --output "runs/$NAME/10-rl-reward-model" $RL \
  --set rl.lr=$lr --set rl.min_lr=$(python3 -c "print($lr / 10)") --set rl.rewards.checker=0 \
  --set rl.rewards.reward_model=1 --set rl.rewards.reward_model_dir="runs/$NAME/08-reward/final"
