"""Multi-turn SFT on top of the transformers `Trainer` (which brings accelerate, DeepSpeed, FSDP,
checkpoints and resume); this module adds the BayLing parts: assistant-only labels over every
turn, packing, LoRA per architecture, and an output folder that serves directly.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bayling.hardware import resolve_bf16
from bayling.train.dataset import (Stats, TrainDataError, read_conversations, read_preferences, tokenize_conversations,
                                   tokenize_preferences)
from bayling.train.packing import Collator, PairCollator, pack, packing_efficiency
from bayling.errors import ConfigError

__all__ = ["TrainConfig", "train", "load_recipe"]

# LoRA targets per architecture; anything else falls back to every linear layer but the head.
LORA_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma3_text": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
}


@dataclass
class TrainConfig:
    __pydantic_config__ = {"extra": "forbid"}  # bayling.config.parse_section: an unknown key is an error
    data: str = ""
    out: str = "run"
    model: str = "gemma3-270m"
    chat_format: str | None = None  # default: the model's (gemma for the embedded base)
    method: str = "lora"  # lora | full | qlora
    lora_r: int = 16
    lora_alpha: int = 32
    # 0, as in peft and LLaMA-Factory: dropout's random masks were 12% of a bf16 LoRA step on 2 Zen 5
    # cores (py-spy, Gemma 3 270M, 4 x 512 packed tokens); the published recipes pin their 0.05.
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = None
    max_len: int = 512
    packing: bool = True
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    seed: int = 42
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 1
    bf16: bool | str | None = "auto"  # auto: on bf16-capable GPUs and CPUs (AVX-512 BF16 / AMX): bayling.hardware
    train_embeddings: bool = False  # full fine-tuning: also train the (tied) embedding / LM head
    gradient_checkpointing: bool = False
    # auto: eager on CPU (packed rows' block mask costs sdpa's CPU kernel ~20% more per token:
    # bench/bench_train.py), sdpa on GPUs (flash / memory-efficient kernels).
    attn_implementation: str = "auto"
    # Checkpoint selection: a JSONL of held-out dev pairs (bayling.train.select) scored at every save;
    # the run's model is the best checkpoint by chrF. None: the last step is the model.
    select_set: str | None = None
    select_max_new_tokens: int = 96
    # Loss weight of the answer tokens that spell a word the user asked for ("make sure it uses X":
    # the builder's meta.expect terms); 1: every trained token counts the same.
    term_weight: float = 1.0
    # Unlikelihood on an untrained (weight-0) assistant turn's own loops: every token of it that
    # completes a 4-gram already earlier in that turn is trained with -log(1 - p) times this
    # coefficient (Welleck et al. 2019). The turn is a model's draft, so these are the positions
    # where that model's greedy continuation repeats itself. 0: drafts are context only.
    unlikelihood: float = 0.0
    # sft: conversations (loss on assistant turns). dpo: preference pairs (`bayling data prefs`; TRL's
    # conversational layout), the sigmoid loss of Rafailov et al. (2023) against the starting weights,
    # whose log-probabilities of both answers are computed once before the first step.
    objective: str = "sft"
    dpo_beta: float = 0.1
    # dpo: weight of the chosen answers' token-mean cross-entropy added to the loss (RPO, Pang et al.
    # 2024), which keeps the chosen answer's own likelihood from falling with the rejected one's; 0: pure DPO.
    sft_weight: float = 0.0
    # LoRA weights to start from and train further (an adapter folder or a shipped name: bayling-mini);
    # for dpo they are also the reference. None: a fresh adapter.
    init_adapter: str | None = None
    tensorboard: bool = False
    resume: bool = False
    torch_threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # passed to TrainingArguments

    def __post_init__(self) -> None:
        if self.term_weight < 0:
            raise ConfigError(f"term_weight must be >= 0, got {self.term_weight}")
        if self.unlikelihood < 0:
            raise ConfigError(f"unlikelihood must be >= 0, got {self.unlikelihood}")
        if self.objective not in ("sft", "dpo"):
            raise ConfigError(f"unknown objective {self.objective!r}: use sft or dpo")
        if self.dpo_beta <= 0 or self.sft_weight < 0:
            raise ConfigError(f"dpo_beta must be > 0 and sft_weight >= 0, got {self.dpo_beta} and {self.sft_weight}")
        if self.init_adapter and self.method not in ("lora", "qlora"):
            raise ConfigError(f"init_adapter is a LoRA adapter: it needs method lora or qlora, not {self.method}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown train option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**d)


def read_recipe_yaml(path: str | Path) -> dict:
    """A recipe file as a mapping, with one-line errors naming the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such recipe")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a recipe is a YAML mapping")
    return doc


def load_recipe(path: str | Path) -> dict:
    """The training options of a recipe: its `train:` section, or the whole file."""
    doc = read_recipe_yaml(path)
    return doc.get("train", doc)


def _prepare_data(cfg: TrainConfig, tokenizer, fmt, console) -> tuple[list, Stats]:
    errors: list[str] = []
    if cfg.objective == "dpo":
        examples, stats = tokenize_preferences(read_preferences(cfg.data), tokenizer, fmt, cfg.max_len,
                                               on_error=lambda origin, err: errors.append(str(err)))
    else:
        examples, stats = tokenize_conversations(
            read_conversations(cfg.data), tokenizer, fmt, cfg.max_len,
            on_error=lambda origin, err: errors.append(str(err)), term_weight=cfg.term_weight,
            unlikelihood=cfg.unlikelihood,
        )
    if not examples:
        detail = f"; first problem: {errors[0]}" if errors else ""
        raise TrainDataError(f"{cfg.data}: nothing trainable ({stats.read} records read, dropped: {dict(stats.dropped)}){detail}")
    return examples, stats


def _progress_callback(tokens_per_step_hint: float):
    """The Trainer's progress bar (it replaces transformers' ProgressCallback; see train()) with the
    loss and trained tokens/s as its postfix next to tqdm's ETA. It prints nothing per log: the
    Trainer's own bar writes every log dict as a line, which buried the bar; the logs stay in the
    state's log_history (train_summary.json)."""
    from transformers.trainer_callback import ProgressCallback

    class LossTokensBar(ProgressCallback):
        def on_train_begin(self, args, state, control, **kw):
            from tqdm.auto import tqdm

            # A resumed run's bar starts at its checkpoint's step: the ETA is that of the steps left.
            if state.is_world_process_zero:
                self.training_bar = tqdm(total=state.max_steps, initial=state.global_step, dynamic_ncols=True)
            self.current_step = state.global_step
            self.t0, self.start_step = time.perf_counter(), state.global_step

        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or "loss" not in logs or not hasattr(self, "t0"):
                return
            steps = max(state.global_step - self.start_step, 1)
            per_s = steps * tokens_per_step_hint / (time.perf_counter() - self.t0)  # trained tokens/s of this run
            if self.training_bar is not None:
                self.training_bar.set_postfix_str(f"loss {float(logs['loss']):.3f}, {per_s:.0f} tokens/s", refresh=False)

    return LossTokensBar()


def _sft_trainer_class():
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    from bayling.train.dataset import IGNORE

    def chunk_loss(hidden, weight, bias, target, softcap, token_weights=None):
        """Per-token loss of one chunk: cross-entropy, times its weight where weighted."""
        logits = F.linear(hidden.to(weight.dtype), weight, bias).float()  # the model is autocast, the head is not
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        nll = F.cross_entropy(logits, target, reduction="none")
        if token_weights is None:
            return nll
        # A negative weight -a is unlikelihood: a * -log(1 - p(target)), with p = exp(-nll).
        unlikely = -torch.log1p(-torch.exp(-nll).clamp(max=1 - 1e-6))
        return torch.where(token_weights < 0, unlikely, nll).mul(token_weights.abs())

    def token_losses(trainer, model, inputs, labels, token_weights=None):
        """(per-token loss on every labelled position, the row each belongs to, model outputs)."""
        from torch.utils.checkpoint import checkpoint

        outputs = model(**inputs, logits_to_keep=torch.empty(0, dtype=torch.long, device=labels.device),
                        output_hidden_states=True)
        hidden = outputs.hidden_states[-1][:, :-1]  # final-norm output; position t predicts t+1
        target = labels[:, 1:]
        trained = target != IGNORE
        rows = torch.arange(len(target), device=target.device).unsqueeze(1).expand_as(target)[trained]
        hidden, target = hidden[trained], target[trained]
        if token_weights is not None:
            token_weights = token_weights[:, 1:][trained].float()
        core = trainer.accelerator.unwrap_model(model) if trainer is not None else model
        head = core.get_output_embeddings()
        softcap = getattr(core.config, "final_logit_softcapping", None)
        chunk = getattr(trainer, "chunk", SFTTrainer.chunk)
        parts = [checkpoint(chunk_loss, hidden[i : i + chunk], head.weight, head.bias, target[i : i + chunk], softcap,
                            None if token_weights is None else token_weights[i : i + chunk], use_reentrant=False)
                 for i in range(0, len(target), chunk)]
        losses = torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)
        return losses, rows, outputs

    class SFTTrainer(Trainer):
        """The LM head and cross-entropy run only on trained tokens, in checkpointed chunks.

        With assistant-only loss half or more of the positions carry no label, and for a model
        with a large vocabulary (Gemma: 262k) the head is most of the compute and nearly all of the
        activation memory: full logits for 4x512 tokens are 2 GB in fp32. Here the head sees only
        labelled positions, `chunk` at a time, recomputed in backward instead of stored. The loss
        is the same token-mean cross-entropy (a test checks it against transformers' own). With
        per-token `loss_weights` (TrainConfig.term_weight) each token's cross-entropy is scaled by
        its weight and the sum still divided by the number of trained tokens; a negative weight
        (TrainConfig.unlikelihood) makes that token's term unlikelihood instead, and it counts as
        one more token in that divisor.
        """

        loss_is_scaled_for_ga = True
        chunk = 256

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            token_weights = inputs.pop("loss_weights", None)
            losses, _, outputs = token_losses(self, model, inputs, labels, token_weights)
            loss = losses.sum()
            if num_items_in_batch is None:
                num_items_in_batch = len(losses)
            loss = loss / torch.as_tensor(num_items_in_batch, device=loss.device).clamp(min=1)
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                loss = loss * self.accelerator.num_processes  # DDP averages gradients over ranks
            return (loss, outputs) if return_outputs else loss

    SFTTrainer.token_losses = staticmethod(token_losses)
    return SFTTrainer


def sequence_logps(token_losses, rows, n_rows: int):
    """Each row's log-probability of its labelled tokens: minus the sum of their cross-entropies."""
    import torch

    return -torch.zeros(n_rows, dtype=token_losses.dtype, device=token_losses.device).index_add(0, rows, token_losses)


def _dpo_trainer_class():
    import torch
    import torch.nn.functional as F

    base = _sft_trainer_class()

    class DPOTrainer(base):
        """DPO (Rafailov et al. 2023) on preference pairs, with the SFT trainer's chunked head.

        A batch holds the chosen answers, then the rejected ones (PairCollator), and the starting
        weights' log-probabilities of both (`ref_logps`, computed once: reference_logps). Loss per
        pair: -log sigmoid(beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected)))),
        averaged over pairs; plus `sft_weight` times the chosen answers' token-mean cross-entropy.
        The log adds the mean reward margin and the share of pairs whose margin is positive.
        """

        def __init__(self, *args, beta: float = 0.1, sft_weight: float = 0.0, **kw):
            super().__init__(*args, **kw)
            self.beta, self.sft_weight = beta, sft_weight
            self.model_accepts_loss_kwargs = False  # a per-pair mean: the Trainer divides by accumulation steps
            self._seen: list[tuple[float, float]] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            ref = inputs.pop("ref_logps").to(torch.float32)
            losses, rows, outputs = self.token_losses(self, model, inputs, labels)
            logps = sequence_logps(losses, rows, len(labels))
            n = len(labels) // 2
            margin = self.beta * ((logps[:n] - ref[:, 0]) - (logps[n:] - ref[:, 1]))
            loss = -F.logsigmoid(margin).mean()
            if self.sft_weight:
                chosen = rows < n
                loss = loss + self.sft_weight * losses[chosen].sum() / chosen.sum().clamp(min=1)
            self._seen += [(m, m > 0) for m in margin.detach().tolist()]
            return (loss, outputs) if return_outputs else loss

        def log(self, logs, *args, **kw):
            if "loss" in logs and self._seen:
                logs["reward_margin"] = round(sum(m for m, _ in self._seen) / len(self._seen), 4)
                logs["reward_accuracy"] = round(sum(ok for _, ok in self._seen) / len(self._seen), 4)
                self._seen = []
            return super().log(logs, *args, **kw)

    return DPOTrainer


def reference_logps(model, pairs: list, collator, bf16: bool, batch_size: int = 8) -> None:
    """Set every pair's `ref_logps`: the model's log-probabilities of its chosen and rejected answers,
    as the training forward computes them (same autocast, dropout off), so step 1's margins are 0."""
    import torch

    from bayling.progress import progress_bar

    token_losses = _sft_trainer_class().token_losses
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with progress_bar(None, len(pairs), "reference log-probs", unit="pairs") as bar, torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i : i + batch_size]
            batch = {k: v.to(device) for k, v in collator(chunk).items() if k != "ref_logps"}
            labels = batch.pop("labels")
            losses, rows, _ = token_losses(None, model, batch, labels)
            logps = sequence_logps(losses.float(), rows, len(labels)).tolist()
            for j, pair in enumerate(chunk):
                pair.ref_logps = (logps[j], logps[len(chunk) + j])
            bar(len(chunk))
    model.train(was_training)


def _write_identity(folder: Path, fmt, base_model: str, method: str) -> None:
    """bayling.json: what a trained folder needs to load (chat format, base model, method)."""
    from bayling.io import atomic_write_json

    atomic_write_json(folder / "bayling.json", {"chat_format": fmt.name, "base_model": base_model, "method": method})


def _checkpoint_identity(fmt, base_model: str, method: str):
    """Every checkpoint carries bayling.json too, so any saved step loads and evaluates like the
    final model (`bayling eval --model OUT/checkpoints/checkpoint-N`)."""
    from transformers import TrainerCallback

    class Identity(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                _write_identity(folder, fmt, base_model, method)

    return Identity()


def _rank_loss_recorder(out: Path):
    """Under several processes, every rank writes the loss it saw (they must agree)."""
    from transformers import TrainerCallback

    class RankLoss(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs and args.world_size > 1:
                path = out / "rank_losses" / f"rank{args.process_index}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a") as f:
                    f.write(json.dumps({"step": state.global_step, "loss": logs["loss"]}) + "\n")

    return RankLoss()


def _quantized_load(method: str, dtype) -> dict:
    """QLoRA: from_pretrained arguments that load the frozen base in 4-bit NF4 (bitsandbytes, CUDA)."""
    if method != "qlora":
        return {}
    import importlib.util

    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("qlora needs a CUDA GPU and bitsandbytes (pip install bitsandbytes); use --method lora on CPU")
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=dtype)
    return {"quantization_config": quant, "device_map": {"": int(os.environ.get("LOCAL_RANK", 0))}}


def train(cfg: TrainConfig) -> dict:
    """Run SFT; returns the summary also written to `out/train_summary.json`."""
    import torch
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    from bayling.chat_formats import get_format
    from bayling.models import default_chat_format, resolve_model_path

    console = Console(stderr=True)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    # The LoRA init draws from torch's RNG before the Trainer seeds it: without this, one seed gave two runs.
    from transformers import set_seed

    set_seed(cfg.seed)
    if not cfg.data:
        raise ConfigError("no training data: pass --data FILE (JSONL or a datasets folder)")
    if not Path(cfg.data).exists():
        raise FileNotFoundError(f"{cfg.data}: no such data file")
    out = Path(cfg.out)
    model_path = resolve_model_path(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    fmt_name = cfg.chat_format or default_chat_format(cfg.model)
    fmt = get_format(fmt_name, tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    # Data first: a file with nothing trainable fails before the model is loaded.
    examples, stats = _prepare_data(cfg, tokenizer, fmt, console)
    dpo = cfg.objective == "dpo"
    packed = cfg.packing and not dpo  # a pair is scored whole, each answer in a row of its own
    rows = pack(examples, cfg.max_len) if packed else examples
    efficiency = packing_efficiency(rows, cfg.batch_size) if packed else None
    console.print(
        f"[bold]data[/] {stats.kept}/{stats.read} {'preference pairs' if dpo else 'conversations'}, {stats.tokens} tokens "
        f"({stats.assistant_tokens} {'in answers' if dpo else 'trained'}), {len(rows)} "
        f"{'packed rows' if packed else 'pairs' if dpo else 'rows'}"
        + (f", packing efficiency {efficiency:.1%}" if efficiency is not None else "")
        + (f"; dropped {dict(stats.dropped)}" if stats.dropped else "")
        + (f"; {stats.truncated} cut at a turn boundary" if stats.truncated else "")
    )

    bf16 = resolve_bf16(cfg.bf16)
    # Frozen weights are stored in bf16 (autocast would otherwise re-cast all of them on every
    # forward); trainable ones are cast back to fp32 below, so optimizer updates keep their precision.
    dtype = torch.bfloat16 if bf16 else torch.float32
    attn = cfg.attn_implementation
    if attn == "auto":
        attn = "sdpa" if torch.cuda.is_available() else "eager"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, attn_implementation=attn,
                                                 **_quantized_load(cfg.method, dtype))
    # Without a KV cache, transformers reads packed rows' position ids as sequence boundaries.
    model.config.use_cache = False
    if cfg.method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        if cfg.method == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
        if cfg.init_adapter:
            from peft import PeftModel

            folder = str(adapter_folder(cfg.init_adapter))
            # The adapter's own shape, with this run's dropout (a saved config carries the dropout it was trained with).
            start = LoraConfig.from_pretrained(folder)
            start.lora_dropout = cfg.lora_dropout
            model = PeftModel.from_pretrained(model, folder, is_trainable=True, config=start)
        else:
            targets = cfg.lora_targets or LORA_TARGETS.get(model.config.model_type, "all-linear")
            model = get_peft_model(model, LoraConfig(
                r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                target_modules=targets, task_type="CAUSAL_LM",
            ))
    elif cfg.method == "full":
        if not cfg.train_embeddings:
            # Gemma 3 270M: 170M of 270M parameters are the tied embedding / LM head.
            model.get_input_embeddings().weight.requires_grad_(False)
            model.get_output_embeddings().weight.requires_grad_(False)
    else:
        raise ConfigError(f"unknown method {cfg.method!r}: use lora, qlora or full")
    if bf16:
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if cfg.method != "full":
            model.enable_input_require_grads()

    collator = PairCollator(tokenizer.pad_token_id) if dpo else Collator(tokenizer.pad_token_id, packed=packed)
    if dpo:
        reference_logps(model, rows, collator, bf16, cfg.batch_size)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    console.print(f"[bold]model[/] {cfg.model} ({model.config.model_type}), {cfg.method}: "
                  f"{trainable:,} trainable of {total:,} parameters; chat format {fmt.name}; "
                  f"{'bf16 autocast' if bf16 else 'fp32'}")

    if cfg.tensorboard:
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(out / "tensorboard"))
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=math.ceil(cfg.warmup_ratio * max(cfg.max_steps, 1)) if cfg.max_steps > 0 else 0,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="cosine",
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        bf16=bf16,  # autocast, on CPU too
        report_to=["tensorboard"] if cfg.tensorboard else [],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
        use_cpu=not torch.cuda.is_available(),
        ddp_find_unused_parameters=False,
        **cfg.extra,
    )
    avg_row = sum(len(r) for r in rows) / len(rows) * (2 if dpo else 1)
    callbacks = [_progress_callback(avg_row * cfg.batch_size * cfg.grad_accum * args.world_size), _rank_loss_recorder(out),
                 _checkpoint_identity(fmt, cfg.model, cfg.method)]
    if cfg.select_set:
        from bayling.train.select import selection_callback

        out.mkdir(parents=True, exist_ok=True)
        if not cfg.resume:
            (out / "select_curve.jsonl").unlink(missing_ok=True)
        callbacks.append(selection_callback(cfg.select_set, out, tokenizer, fmt, bf16, cfg.select_max_new_tokens))
    from bayling.train.checkpoints import completion_callback, finished, resume_point, training_fingerprint

    fingerprint = training_fingerprint(cfg)
    callbacks.append(completion_callback(fingerprint))  # last: after the checkpoint's files and score
    with args.main_process_first(desc="checkpoints"):  # the main process removes what cannot resume
        resume = resume_point(out / "checkpoints", fingerprint, cfg.resume, lambda m: console.print(f"[yellow]{m}[/]"),
                              out / "select_curve.jsonl" if cfg.select_set else None)
    trainer = (_dpo_trainer_class() if dpo else _sft_trainer_class())(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=collator,
        callbacks=callbacks,
        **({"beta": cfg.dpo_beta, "sft_weight": cfg.sft_weight} if dpo else {}),
    )
    from transformers.trainer_callback import ProgressCallback

    for cb in [c for c in trainer.callback_handler.callbacks if type(c) is ProgressCallback]:
        trainer.remove_callback(cb)  # LossTokensBar is the bar: the default one would print every log dict
    if cfg.resume:
        console.print(f"[bold]resume[/] from {resume}" if resume else "[yellow]no checkpoint to resume: starting fresh[/]")
    t0 = time.perf_counter()
    if resume is not None and finished(resume):
        # Killed after the last step was saved: the Trainer would train one step past max_steps.
        from transformers import TrainerState

        from bayling.train.select import load_checkpoint_weights

        load_checkpoint_weights(trainer.model, resume)
        trainer.state = TrainerState.load_from_json(str(resume / "trainer_state.json"))
    else:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    secs = time.perf_counter() - t0
    selection = _select_best(trainer, cfg, tokenizer, fmt, bf16, out, console) if cfg.select_set else None

    summary = {
        "base_model": cfg.model,
        "base_model_path": model_path,
        "chat_format": fmt.name,
        "method": cfg.method,
        "objective": cfg.objective,
        "config": asdict(cfg),
        "data": stats.as_dict(),
        "packing_efficiency": efficiency,
        "global_step": trainer.state.global_step,
        "final_loss": _last_loss(trainer.state.log_history),
        "train_seconds": round(secs, 1),
        "log_history": trainer.state.log_history,
        "selection": selection,
    }
    if trainer.is_world_process_zero():
        _save_outputs(trainer, tokenizer, fmt, out, summary)
    return summary


def adapter_folder(name: str) -> Path:
    """A LoRA adapter to start from: a shipped name (bayling-mini) or a folder with adapter_config.json."""
    from bayling.models import _shipped_path

    folder = _shipped_path(name) or Path(name)
    if not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"init_adapter {name!r}: not a shipped adapter nor a folder with adapter_config.json")
    return folder


def _select_best(trainer, cfg: TrainConfig, tokenizer, fmt, bf16: bool, out: Path, console) -> dict | None:
    """Score the final weights if no save did, then put the best scored weights in the model."""
    from bayling.train.select import CURVE, best_point, load_checkpoint_weights, read_curve, read_select_set, score_model

    if not trainer.is_world_process_zero():  # only the main process scores and saves
        return None
    step = trainer.state.global_step
    curve = [p for p in read_curve(out) if p["step"] <= step]
    if not curve or curve[-1]["step"] != step:
        point = score_model(trainer.model, tokenizer, fmt, read_select_set(cfg.select_set), bf16,
                            cfg.select_max_new_tokens)
        point.update(step=step, checkpoint=None)  # the weights in memory
        with (out / CURVE).open("a", encoding="utf-8") as f:
            f.write(json.dumps(point) + "\n")
        curve.append(point)
    best = best_point(curve)
    if best is not None and best["step"] != step:
        load_checkpoint_weights(trainer.model, best["checkpoint"])
    console.print(f"[bold]select[/] best chrF {best['chrf']:.1f} at step {best['step']} of {step} "
                  f"(dev slice of {best['n']} pairs)")
    return {"curve": curve, "best_step": best["step"], "best_chrf": best["chrf"], "select_set": cfg.select_set}


def _last_loss(history: list[dict]) -> float | None:
    losses = [h["loss"] for h in history if "loss" in h]
    return losses[-1] if losses else None


def _save_outputs(trainer, tokenizer, fmt, out: Path, summary: dict) -> None:
    from bayling.chat_formats import attach_format

    out.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(out)
    if summary["method"] != "full":
        # peft records the resolved cache path; keep the portable name too.
        cfg_path = out / "adapter_config.json"
        adapter_cfg = json.loads(cfg_path.read_text())
        adapter_cfg["base_model_name_or_path"] = summary["base_model"]
        cfg_path.write_text(json.dumps(adapter_cfg, indent=2))
    attach_format(tokenizer, fmt)
    tokenizer.save_pretrained(out)
    _write_identity(out, fmt, summary["base_model"], summary["method"])
    from bayling.io import atomic_write_json

    atomic_write_json(out / "train_summary.json", summary)
    (out / "README.md").write_text(_model_card(summary), encoding="utf-8")


def _model_card(s: dict) -> str:
    """The run's README.md: Hugging Face model-card front matter (what the Hub indexes), then the table."""
    import re

    import yaml

    from bayling.languages import UnknownLanguage, resolve
    from bayling.models import EMBEDDED

    c = s["config"]
    notice = ""
    if s["base_model"] in EMBEDDED:
        notice = f"\n## Licence\n{EMBEDDED[s['base_model']].licence_note}\n"
    dpo = s.get("objective") == "dpo"
    kept, tokens = ("preference pairs", "answer tokens") if dpo else ("conversations", "trained tokens")
    # The Hub knows the embedded bases by these ids and licences; a hub id given as the base is its own id.
    hub = {"gemma3-270m": ("google/gemma-3-270m", "gemma"),
           "smollm2-135m": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")}
    base_id, licence = hub.get(s["base_model"], (None, None))
    if base_id is None and re.fullmatch(r"[\w.-]+/[\w.-]+", s["base_model"]) and not Path(s["base_model"]).exists():
        base_id = s["base_model"]
    meta: dict = {"base_model": base_id} if base_id else {}
    codes = s["data"].get("languages") or s.get("languages") or []  # FLORES codes, when the summary counts them
    iso = []
    for code in codes:
        try:
            lang = resolve(code)
        except UnknownLanguage:
            continue
        if (lang.iso639_1 or lang.iso639_3) not in iso:
            iso.append(lang.iso639_1 or lang.iso639_3)
    if iso:
        meta["language"] = iso
    if licence:  # a base of unknown licence gets none rather than a guess
        meta["license"] = licence
    meta["library_name"] = "peft" if s["method"] in ("lora", "qlora") else "transformers"
    meta["pipeline_tag"] = "text-generation"
    meta["tags"] = ["bayling", "translation", s["method"], "dpo" if dpo else "sft"]
    datasets = s["data"].get("datasets") or s.get("datasets")
    if datasets:
        meta["datasets"] = list(datasets)
    front = "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n"
    return front + (
        f"# {Path(c['out']).name}\n\n"
        f"Fine-tuned with [bayling](https://github.com/) (BayLing recipe: interactive-translation SFT).\n\n"
        f"| | |\n|---|---|\n"
        f"| base model | `{s['base_model']}` |\n| method | {s['method']}"
        + (f" from `{c['init_adapter']}`" if c.get("init_adapter") else "") + " |\n"
        + (f"| objective | DPO (beta {c['dpo_beta']}, SFT weight {c['sft_weight']}) on preference pairs |\n"
           if dpo else "") +
        f"| chat format | `{s['chat_format']}` |\n| data | `{c['data']}` ({s['data']['kept']} {kept}, "
        f"{s['data']['assistant_tokens']} {tokens}) |\n"
        f"| steps | {s['global_step']} |\n| final loss | {s['final_loss']} |\n"
        + (f"| selected checkpoint | step {s['selection']['best_step']} (chrF {s['selection']['best_chrf']} on the "
           f"held-out dev slice `{s['selection']['select_set']}`) |\n" if s.get("selection") else "")
        + (f"| max_len | {c['max_len']} (preference pairs are not packed) |\n" if dpo else
           f"| max_len / packing | {c['max_len']} / {c['packing']} (efficiency {s['packing_efficiency']}) |\n")
        +
        f"| lr / batch / grad accum | {c['lr']} / {c['batch_size']} / {c['grad_accum']} |\n"
        f"\nUse: `bayling chat --model {c['out']}`\n{notice}"
    )
