"""The llama.cpp backend: load a GGUF model, apply LoRA adapters, sample k candidates at once.

Traps measured on this project's machines, and how this module keeps them away:

- Every llama.cpp call, the load included, runs on ONE dedicated thread shared by all backends
  in the process: two threads driving llama.cpp make its OpenMP teams fight over the cores, and
  two loads at once crashed a server. Loads are therefore serialised too.
- k candidates share one evaluation of the prompt: the prompt goes into sequence 0 of a
  unified KV cache, `llama_memory_seq_cp` shares it with sequences 1..k-1 (no copy), and each
  step decodes one token of every live sequence in a single `llama_decode`.
- The prompt's tokens get no logits (no `logits_all`); only the generated token's row is read.
  A finished sequence's cells are freed at once, so the live ones attend over less.
- The KV cache keeps the last prompt, so a prompt sharing a prefix with it (the instruction line,
  the worked examples) only evaluates the rest. After an adapter swap that prefix was computed
  with other weights, so every swap clears it.
- Same seed, same output, whatever the cache holds: flash attention is off (with it, cached
  and fresh evaluation of a prompt disagreed by up to 0.6 in the logits) and the prompt's last
  two tokens are always evaluated (one-token batches take a code path that rounds differently).
- f16 LoRA adapters decode about 4.5x slower on CPU: they are refused unless layers run on a
  GPU (see `gguf.check_adapter_file`).
- llama.cpp's threads meet at a barrier after every operation, so a thread waiting for a core
  stalls the others: with one of two cores busy elsewhere (Lean elaborating, a training run),
  two threads generated 1.3 tokens/s where one thread gave 65. Unless `n_threads` is set,
  each call uses only the cores that no other program is running on when it starts.
- Nothing reaches stdout: llama.cpp's log goes to a small in-memory tail that error messages
  quote.
- Special-token texts (`<|im_end|>`, `<|im_start|>`, end of text) become special tokens only in
  the template text of a prompt, never in user text (a goal that contains `<|im_end|>` must not
  end the user's turn): the control tokens are cut out of the template pieces, and the text
  between them, template and user text alike, is tokenized with special-token parsing off. That
  is exactly what llama.cpp does for the whole string when the user text holds no such text,
  so prompts tokenize as they always did (and as training tokenized them).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import llama_cpp as L
import numpy as np

from segpilot.errors import SegpilotError
from segpilot.lru import Lru
from segpilot.model.generation import (
    Generation,
    Sample,
    cut_at_specials,
    encode_utf8,
    prompt_parts,
)
from segpilot.model.gguf import GgufError, check_adapter_file, check_model_file
from segpilot.model.locate import resolve_model_path
from segpilot.model.sampling import sample_rows
from segpilot.model.settings import MAX_SEQUENCES, ModelSettings

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_llama_thread: list[int] = []
_log_tail: deque[str] = deque(maxlen=16)
_GGML_LOG_WARN, _GGML_LOG_ERROR, _GGML_LOG_CONT = 2, 3, 5
_last_level = [0]
# Tokens that llama.cpp's tokenizer only produces from text when asked to parse special tokens
# (user-defined added tokens are matched either way, as Hugging Face tokenizers match them).
_SPECIAL_ATTRS = L.LLAMA_TOKEN_ATTR_CONTROL | L.LLAMA_TOKEN_ATTR_UNKNOWN
_ASCII_SPACE = " \t\n\v\f\r"  # what llama.cpp's isspace() strips beside LSTRIP/RSTRIP tokens
# llama.cpp's llama_token_data (id, logit, p) as a numpy record, for whole-row grammar checks.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
_GRAMMARS_KEPT = 16  # parsed grammars kept for reuse
_GRAMMAR_SHORTLIST = 256  # a refused pick is drawn again from this many likeliest tokens first


@L.llama_log_callback
def _log_sink(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    """Keep llama.cpp's warnings and errors for error messages; print nothing."""
    if level == _GGML_LOG_CONT:
        if _last_level[0] in (_GGML_LOG_WARN, _GGML_LOG_ERROR) and _log_tail:
            _log_tail[-1] += text.decode("utf-8", errors="replace").rstrip()
        return
    _last_level[0] = level
    if level in (_GGML_LOG_WARN, _GGML_LOG_ERROR):
        _log_tail.append(text.decode("utf-8", errors="replace").strip())


def _init_llama_thread() -> None:
    _llama_thread.append(threading.get_ident())
    L.llama_log_set(_log_sink, ctypes.c_void_p(0))
    L.llama_backend_init()


def on_llama_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` on the process's single llama.cpp thread and wait for it."""
    global _executor
    if _llama_thread and threading.get_ident() == _llama_thread[0]:
        return fn(*args)
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="segpilot-llama", initializer=_init_llama_thread
            )
    return _executor.submit(fn, *args).result()


def _last_log() -> str:
    return _log_tail[-1] if _log_tail else "no message from llama.cpp"


@dataclass
class _Seq:
    rng: np.random.Generator
    tokens: list[int]
    data: bytearray
    logprob: float = 0.0
    finish: str | None = None
    text: str = ""
    forced: list[int] = field(default_factory=list)  # tokens to feed next, instead of sampling


class LlamaBackend:
    """One loaded GGUF model with its context; use as a context manager or call `close()`."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.model_path = resolve_model_path(settings.model_path)
        self.info = check_model_file(self.model_path)
        self.adapter_path: Path | None = None
        self.adapter_key: tuple[str, int, float] | None = None
        self._model: Any = None
        self._ctx: Any = None
        self._batch: Any = None
        self._adapter: Any = None
        self._cached: list[int] = []
        self._pieces: dict[int, bytes] = {}
        self._specials: list[tuple[str, int, int]] = []  # (text, id, attributes), longest first
        # GBNF text -> its parsed grammar sampler (a goal's own names make its own grammar).
        self._grammars: Lru[str, Any] = Lru(_GRAMMARS_KEPT)
        on_llama_thread(self._load)
        if settings.adapter_path:
            try:
                self.set_adapter(settings.adapter_path, settings.adapter_scale)
            except BaseException:
                self.close()
                raise

    # -- lifecycle ---------------------------------------------------------------------------

    def _load(self) -> None:
        _log_tail.clear()
        params = L.llama_model_default_params()
        params.n_gpu_layers = self.settings.n_gpu_layers
        model = L.llama_model_load_from_file(str(self.model_path).encode(), params)
        if not model:
            arch = self.info.architecture
            raise GgufError(
                f"{self.model_path}: llama.cpp {L.__version__} cannot load this model "
                f"(architecture {arch!r}): {_last_log()}"
            )
        cparams = L.llama_context_default_params()
        cparams.n_ctx = self.settings.n_ctx
        cparams.n_batch = cparams.n_ubatch = min(512, self.settings.n_ctx)
        cparams.n_seq_max = MAX_SEQUENCES
        cparams.kv_unified = True  # one KV buffer: the shared prompt is stored once
        self._n_threads = self.settings.n_threads or os.cpu_count() or 1
        cparams.n_threads = cparams.n_threads_batch = self._n_threads
        cparams.no_perf = True
        # Off for determinism (see "Same seed, same output" above); it was not faster here.
        cparams.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        ctx = L.llama_init_from_model(model, cparams)
        if not ctx:
            L.llama_model_free(model)
            raise SegpilotError(
                f"{self.model_path}: llama.cpp could not create a context: {_last_log()}",
                fix="lower n_ctx",
            )
        self._model, self._ctx = model, ctx
        self._vocab = L.llama_model_get_vocab(model)
        self.n_vocab = L.llama_vocab_n_tokens(self._vocab)
        self.n_batch = cparams.n_batch
        self._batch = L.llama_batch_init(max(self.n_batch, MAX_SEQUENCES), 0, 1)
        self._specials = _special_tokens(self._vocab, self.n_vocab)
        self._add_bos = bool(L.llama_vocab_get_add_bos(self._vocab))
        self._add_eos = bool(L.llama_vocab_get_add_eos(self._vocab))
        # What the grammar sampler reads: one candidate (the token picked), or the whole row.
        self._one_data = (L.llama_token_data * 1)()
        self._one = L.llama_token_data_array(self._one_data, 1, -1, False)
        self._row = np.zeros(self.n_vocab, dtype=_TOKEN_DATA)
        self._row_ids = np.arange(self.n_vocab, dtype=np.int32)
        self._all = L.llama_token_data_array(
            ctypes.cast(self._row.ctypes.data, ctypes.POINTER(L.llama_token_data)),
            self.n_vocab,
            -1,
            False,
        )

    def close(self) -> None:
        """Free the model, context and adapter (idempotent, and safe when several threads
        close at once: the check is made again on the llama thread, where they queue)."""
        if self._ctx is not None:
            on_llama_thread(self._free)

    def _free(self) -> None:
        if self._ctx is None:
            return  # another close, queued before this one, freed everything
        for sampler in self._grammars.values():
            L.llama_sampler_free(sampler)
        self._grammars.clear()
        L.llama_batch_free(self._batch)
        L.llama_free(self._ctx)
        if self._adapter:
            L.llama_adapter_lora_free(self._adapter)
        L.llama_model_free(self._model)
        self._ctx = self._model = self._adapter = self._batch = None

    def __enter__(self) -> LlamaBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def gpu_offload(self) -> bool:
        """Whether layers run on a GPU (a GPU build of llama.cpp and n_gpu_layers != 0)."""
        return bool(L.llama_supports_gpu_offload()) and self.settings.n_gpu_layers != 0

    # -- adapters ----------------------------------------------------------------------------

    def set_adapter(self, path: str | Path | None, scale: float = 1.0) -> None:
        """Apply a LoRA adapter (GGUF) on top of the model, replacing any other; None removes
        it. The model is not reloaded; the prompt cache is cleared."""
        adapter = Path(path).expanduser() if path else None
        if adapter is not None:
            check_adapter_file(
                adapter, model_architecture=self.info.architecture, allow_half=self.gpu_offload
            )
        on_llama_thread(self._set_adapter, adapter, scale)

    def _set_adapter(self, path: Path | None, scale: float) -> None:
        new = None
        _log_tail.clear()
        if path is not None:
            new = L.llama_adapter_lora_init(self._model, str(path).encode())
            if not new:
                raise GgufError(
                    f"{path}: llama.cpp could not load this LoRA adapter: {_last_log()}"
                )
            adapters = (L.llama_adapter_lora_p_ctypes * 1)(new)
            rc = L.llama_set_adapters_lora(self._ctx, adapters, 1, (ctypes.c_float * 1)(scale))
        else:
            rc = L.llama_set_adapters_lora(self._ctx, None, 0, None)
        if rc != 0:
            if new:
                L.llama_adapter_lora_free(new)
            raise SegpilotError(f"{path}: llama.cpp refused the adapter (code {rc})")
        if self._adapter:
            L.llama_adapter_lora_free(self._adapter)
        self._adapter, self.adapter_path = new, path
        # What result caches key on: the adapter as loaded (a file rewritten later is another).
        self.adapter_key = None if path is None else (str(path), path.stat().st_mtime_ns, scale)
        self._clear_memory()

    def reset(self) -> None:
        """Forget the cached prompt (the next call evaluates its prompt from the start)."""
        on_llama_thread(self._clear_memory)

    def _clear_memory(self) -> None:
        L.llama_memory_clear(L.llama_get_memory(self._ctx), True)
        self._cached = []

    # -- text --------------------------------------------------------------------------------

    @property
    def special_tokens(self) -> Mapping[str, int]:
        """The model's control (and unknown) tokens by text (`<|im_end|>` -> its id): what
        only a prompt's template text can produce, never user text."""
        return MappingProxyType({text: token for text, token, _ in self._specials})

    def tokenize(self, text: str) -> list[int]:
        """The tokens of a prompt, the model's BOS/EOS added as it asks. Special-token texts
        are special tokens in the template parts of a `PromptText` (all of a plain str) and
        literal text in its user parts."""
        return on_llama_thread(self._tokenize, text)

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of `tokens`, special tokens written out (`<|im_end|>`)."""
        data = on_llama_thread(lambda: b"".join(self._piece(t) for t in tokens))
        return data.decode("utf-8", errors="replace")

    def _tokenize(self, prompt: str) -> list[int]:
        pieces: list[str | int] = []  # literal text, or the id of a special token
        for part in prompt_parts(prompt):
            encode_utf8(part.text, "the prompt")
            for piece in self._cut_specials(part.text) if part.template else [part.text]:
                if isinstance(piece, str) and pieces and isinstance(pieces[-1], str):
                    pieces[-1] += piece  # text runs on across parts, as in the whole string
                else:
                    pieces.append(piece)
        tokens = [L.llama_vocab_bos(self._vocab)] if self._add_bos else []
        for i, piece in enumerate(pieces):
            if isinstance(piece, int):
                tokens.append(piece)
                continue
            # Beside an LSTRIP/RSTRIP token llama.cpp drops the whitespace; do the same.
            if i + 1 < len(pieces) and self._attr(pieces[i + 1]) & L.LLAMA_TOKEN_ATTR_LSTRIP:
                piece = piece.rstrip(_ASCII_SPACE)
            if i > 0 and self._attr(pieces[i - 1]) & L.LLAMA_TOKEN_ATTR_RSTRIP:
                piece = piece.lstrip(_ASCII_SPACE)
            if piece:
                tokens += self._tokenize_literal(piece)
        if self._add_eos:
            tokens.append(L.llama_vocab_eos(self._vocab))
        return tokens

    def _cut_specials(self, text: str) -> list[str | int]:
        """Template text with its special-token texts replaced by their ids, longest first
        (the order llama.cpp matches them in)."""
        return cut_at_specials(text, ((special, token) for special, token, _ in self._specials))

    def _attr(self, piece: str | int) -> int:
        return 0 if isinstance(piece, str) else L.llama_vocab_get_attr(self._vocab, piece)

    def _tokenize_literal(self, text: str) -> list[int]:
        """`text` with special-token parsing off and no BOS/EOS: control-token texts in it
        stay text."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        for _ in range(2):
            buf = (L.llama_token * capacity)()
            n = L.llama_tokenize(self._vocab, data, len(data), buf, capacity, False, False)
            if n >= 0:
                return list(buf[:n])
            capacity = -n
        raise SegpilotError(f"could not tokenize a prompt of {len(data)} bytes")

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = L.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = L.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
            piece = self._pieces[token] = buf.raw[:n]
        return piece

    # -- generation --------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        k: int,
        *,
        stop: Sequence[str] = (),
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        budget_s: float | None = None,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        prefixes: Sequence[str] = (),
    ) -> Generation:
        """Sample `k` continuations of `prompt` that share one evaluation of it.

        Unset sampling arguments come from the settings. Each sequence stops at an
        end-of-generation token, at a stop string (cut off), or after `max_tokens`; all stop
        when the wall-clock budget is spent or `cancel` is set (the partial texts are kept).

        `grammar` (GBNF text, root rule `root`; see `generation.tactic_grammar`) constrains
        every sequence through its own copy of llama.cpp's grammar sampler: a picked token the
        grammar refuses is drawn again, with the same uniform, from the tokens it allows.
        Scores stay the model's own log-probabilities.

        `prefixes[i]` (for the first `len(prefixes)` sequences) is the start sequence i must
        take: its tokens are fed instead of sampled (the grammar accepting them; one it
        refuses ends the forcing there), scored by the model like sampled ones, and are part
        of the sample's text. The policy uses it to start candidates with different tactics.
        """
        s = self.settings
        if len(prefixes) > k:
            raise SegpilotError(f"{len(prefixes)} prefixes for {k} sequences")
        if not 1 <= k <= MAX_SEQUENCES:
            raise SegpilotError(f"k must be between 1 and {MAX_SEQUENCES}, not {k}")
        return on_llama_thread(
            self._generate,
            prompt,
            k,
            tuple(stop),
            s.temperature if temperature is None else temperature,
            s.top_p if top_p is None else top_p,
            s.max_tokens if max_tokens is None else max_tokens,
            s.seed if seed is None else seed,
            s.budget_s if budget_s is None else budget_s,
            cancel,
            grammar,
            tuple(prefixes),
        )

    def _generate(
        self,
        prompt: str,
        k: int,
        stop: tuple[str, ...],
        temperature: float,
        top_p: float,
        max_tokens: int,
        seed: int,
        budget_s: float,
        cancel: threading.Event | None,
        grammar: str | None,
        prefixes: tuple[str, ...] = (),
    ) -> Generation:
        start = time.perf_counter()
        deadline = start + budget_s
        threads = self.settings.n_threads or free_cores(os.cpu_count() or 1)
        if threads != self._n_threads:
            L.llama_set_n_threads(self._ctx, threads, threads)
            self._n_threads = threads
        tokens = self._tokenize(prompt)
        if len(tokens) + k * max_tokens > self.settings.n_ctx:
            raise SegpilotError(
                f"a prompt of {len(tokens)} tokens plus {k} x {max_tokens} generated tokens does "
                f"not fit in n_ctx={self.settings.n_ctx}",
                fix="raise n_ctx, or lower k or max_tokens",
            )
        # Sequence i draws from seed + i, so k single calls with seeds seed..seed+k-1 make a
        # like-for-like baseline (not bit-identical: one-token batches round differently).
        seqs = [_Seq(np.random.default_rng(seed + i), [], bytearray()) for i in range(k)]
        for seq, prefix in zip(seqs, prefixes, strict=False):
            seq.forced = self._tokenize_literal(prefix) if prefix else []
        base = self._grammar(grammar) if grammar else None
        reused, first = self._eval_prompt(tokens, deadline, cancel)
        prompt_s = time.perf_counter() - start
        steps: list[tuple[int, float]] = []
        if first is None:
            interrupted = "cancelled" if cancel is not None and cancel.is_set() else "budget"
            for seq in seqs:
                seq.finish = interrupted
        else:
            mem = L.llama_get_memory(self._ctx)
            for i in range(1, k):
                L.llama_memory_seq_cp(mem, 0, i, -1, -1)
            grammars = [L.llama_sampler_clone(base) for _ in seqs] if base else None
            try:
                steps = self._decode_loop(
                    seqs,
                    first,
                    len(tokens),
                    stop,
                    temperature,
                    top_p,
                    max_tokens,
                    deadline,
                    cancel,
                    grammars,
                )
            finally:
                for sampler in grammars or ():
                    L.llama_sampler_free(sampler)
            self._forget_generated(k, len(tokens))
        samples = tuple(
            Sample(seq.text, len(seq.tokens), seq.logprob, seq.finish or "length") for seq in seqs
        )
        decode_s = time.perf_counter() - start - prompt_s
        return Generation(samples, len(tokens), reused, prompt_s, decode_s, threads, tuple(steps))

    def _eval_prompt(
        self, tokens: list[int], deadline: float, cancel: threading.Event | None
    ) -> tuple[int, np.ndarray | None]:
        """Evaluate `tokens` into sequence 0, reusing the cached prefix; return the number of
        reused tokens and the logits row of the last token (None when interrupted)."""
        common = 0
        for a, b in zip(self._cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        # Evaluate at least the last two tokens: llama.cpp runs one-token batches along another
        # code path whose logits differ slightly, and reusing the cache must not change results.
        common = max(0, min(common, len(tokens) - 2))
        mem = L.llama_get_memory(self._ctx)
        if not L.llama_memory_seq_rm(mem, 0, common, -1):
            L.llama_memory_clear(mem, True)
            common = 0
        self._cached = tokens[:common]
        for begin in range(common, len(tokens), self.n_batch):
            end = min(begin + self.n_batch, len(tokens))
            entries = [(tokens[p], p, 0, p == len(tokens) - 1) for p in range(begin, end)]
            self._decode(entries)
            self._cached = tokens[:end]
            if end < len(tokens) and _interrupted(deadline, cancel):
                return common, None
        return common, self._logits(1)[0].copy()

    def _decode_loop(
        self,
        seqs: list[_Seq],
        first: np.ndarray,
        n_prompt: int,
        stop: tuple[str, ...],
        temperature: float,
        top_p: float,
        max_tokens: int,
        deadline: float,
        cancel: threading.Event | None,
        grammars: list[Any] | None = None,
    ) -> list[tuple[int, float]]:
        """Sample until every sequence has finished; return (live sequences, seconds) for
        each decode step. With `grammars` (one sampler per sequence) each pick obeys its
        sequence's grammar."""
        steps: list[tuple[int, float]] = []
        mem = L.llama_get_memory(self._ctx)
        live = list(range(len(seqs)))
        rows = np.broadcast_to(first, (len(seqs), first.shape[0]))
        while live:
            uniforms = np.array([seqs[i].rng.random() for i in live])
            picked, logprobs = sample_rows(rows, temperature, top_p, uniforms)
            for j, (i, token, logprob) in enumerate(
                zip(live, picked.tolist(), logprobs.tolist(), strict=True)
            ):
                forced = seqs[i].forced
                if forced and (grammars is None or self._grammar_allows(grammars[i], forced[0])):
                    token = forced.pop(0)
                    logprob = _log_softmax_at(rows[j], token)
                    if grammars is not None:
                        L.llama_sampler_accept(grammars[i], token)
                    self._advance(seqs[i], token, logprob, stop, max_tokens)
                    continue
                forced.clear()
                if grammars is not None:
                    grammar = grammars[i]
                    if not self._grammar_allows(grammar, token):
                        found = self._constrained_pick(
                            grammar, rows[j], temperature, top_p, uniforms[j]
                        )
                        if found is None:  # the grammar allows nothing more: end here
                            seqs[i].finish = "stop"
                            continue
                        token, logprob = found
                    if not L.llama_vocab_is_eog(self._vocab, token):
                        L.llama_sampler_accept(grammar, token)
                self._advance(seqs[i], token, logprob, stop, max_tokens)
            for i in live:
                if seqs[i].finish is not None:
                    # Free its generated cells (the prompt's stay): new tokens fill them
                    # instead of growing the span of cache every live token attends over.
                    L.llama_memory_seq_rm(mem, i, n_prompt, -1)
            live = [i for i in live if seqs[i].finish is None]
            if not live:
                break
            if _interrupted(deadline, cancel):
                reason = "cancelled" if cancel is not None and cancel.is_set() else "budget"
                for i in live:
                    seqs[i].finish = reason
                break
            entries = [
                (seqs[i].tokens[-1], n_prompt + len(seqs[i].tokens) - 1, i, True) for i in live
            ]
            step_start = time.perf_counter()
            self._decode(entries)
            steps.append((len(live), time.perf_counter() - step_start))
            rows = self._logits(len(live))
        return steps

    def _grammar(self, text: str) -> Any:
        """The parsed grammar sampler of a GBNF text (parsed once per backend)."""
        sampler = self._grammars.find(text)
        if sampler is None:
            _log_tail.clear()
            sampler = L.llama_sampler_init_grammar(self._vocab, text.encode(), b"root")
            if not sampler:
                raise SegpilotError(f"llama.cpp could not parse the grammar: {_last_log()}")
            for _, old in self._grammars.put(text, sampler):
                L.llama_sampler_free(old)
        return sampler

    def _grammar_allows(self, grammar: Any, token: int) -> bool:
        """Whether `grammar` allows `token` next (one candidate: about 0.5 ms)."""
        one = self._one
        self._one_data[0] = L.llama_token_data(token, 0.0, 0.0)
        one.size, one.selected, one.sorted = 1, -1, False
        L.llama_sampler_apply(grammar, ctypes.byref(one))
        return bool(self._one_data[0].logit != -np.inf)

    def _constrained_pick(
        self, grammar: Any, row: np.ndarray, temperature: float, top_p: float, uniform: float
    ) -> tuple[int, float] | None:
        """A token drawn from `row` restricted to what `grammar` allows now, and its score
        under the unrestricted row; None when it allows no token.

        The grammar first sees only the row's `_GRAMMAR_SHORTLIST` likeliest tokens (a whole
        row costs about 5 ms, a shortlist 0.1-4 ms); the draw is from those it allows,
        and from the whole row only when it allows none of them."""
        n = min(_GRAMMAR_SHORTLIST, len(row))
        shortlist = np.argpartition(row, -n)[-n:]
        for ids in (shortlist.astype(np.int32), self._row_ids):
            allowed = self._grammar_filter(grammar, ids)
            if allowed.size:
                break
        else:
            return None
        picked, _ = sample_rows(row[allowed][None, :], temperature, top_p, np.array([uniform]))
        token = int(allowed[int(picked[0])])
        return token, _log_softmax_at(row, token)

    def _grammar_filter(self, grammar: Any, ids: np.ndarray) -> np.ndarray:
        """The tokens of `ids` that `grammar` allows next, in the same order."""
        data = self._row[: len(ids)]
        data["id"] = ids
        data["logit"] = 0.0
        self._all.size, self._all.selected, self._all.sorted = len(ids), -1, False
        L.llama_sampler_apply(grammar, ctypes.byref(self._all))
        return ids[data["logit"] != -np.inf]

    def _advance(
        self, seq: _Seq, token: int, logprob: float, stop: tuple[str, ...], max_tokens: int
    ) -> None:
        if L.llama_vocab_is_eog(self._vocab, token):
            seq.finish = "eos"
            return
        seq.tokens.append(token)
        seq.logprob += logprob
        seq.data += self._piece(token)
        seq.text = seq.data.decode("utf-8", errors="ignore")
        for s in stop:
            cut = seq.text.find(s)
            if cut >= 0:
                seq.text, seq.finish = seq.text[:cut], "stop"
                return
        if len(seq.tokens) >= max_tokens:
            seq.finish = "length"

    def _forget_generated(self, k: int, n_prompt: int) -> None:
        """Drop the generated tokens from the KV cache; keep the prompt in sequence 0."""
        mem = L.llama_get_memory(self._ctx)
        for i in range(1, k):
            L.llama_memory_seq_rm(mem, i, -1, -1)
        L.llama_memory_seq_rm(mem, 0, n_prompt, -1)

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants_logits) entries."""
        batch = self._batch
        for j, (token, pos, seq, logits) in enumerate(entries):
            batch.token[j] = token
            batch.pos[j] = pos
            batch.n_seq_id[j] = 1
            batch.seq_id[j][0] = seq
            batch.logits[j] = logits
        batch.n_tokens = len(entries)
        rc = L.llama_decode(self._ctx, batch)
        if rc != 0:
            self._clear_memory()
            raise SegpilotError(f"llama_decode failed (code {rc}): {_last_log()}")

    def _logits(self, n_rows: int) -> np.ndarray:
        ptr = L.llama_get_logits(self._ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_rows, self.n_vocab))


def _log_softmax_at(row: np.ndarray, token: int) -> float:
    shifted = row.astype(np.float64) - float(row.max())
    return float(shifted[token] - np.log(np.exp(shifted).sum()))


def _special_tokens(vocab: Any, n_vocab: int) -> list[tuple[str, int, int]]:
    """(text, id, attributes) of the vocabulary's control and unknown tokens, longest text
    first (a scan of the vocabulary: about 20 ms for 50k tokens)."""
    found = []
    for token in range(n_vocab):
        attr = L.llama_vocab_get_attr(vocab, token)
        if attr & _SPECIAL_ATTRS:
            raw = L.llama_vocab_get_text(vocab, token)
            try:
                text = raw.decode("utf-8") if raw else ""
            except UnicodeDecodeError:
                continue  # no str spells it: no prompt text can match it
            if text:
                found.append((text, token, attr))
    found.sort(key=lambda item: -len(item[0].encode("utf-8")))
    return found


def free_cores(total: int, reads: int = 3) -> int:
    """Cores not taken by other programs now, at least 1: `total` minus the runnable tasks in
    /proc/loadavg that are not this process's own threads (llama.cpp's workers may still be
    spinning from the last call). The fewest over a few reads, so that a task running for an
    instant does not count; `total` where /proc is not there."""
    busy = []
    for i in range(reads):
        try:
            with open("/proc/loadavg", encoding="ascii") as fh:
                runnable = int(fh.read().split()[3].split("/")[0])
            busy.append(runnable - _running_threads_here())
        except (OSError, ValueError, IndexError):
            return total
        if i + 1 < reads:
            time.sleep(0.0005)
    return max(1, total - max(0, min(busy)))


def _running_threads_here() -> int:
    running = 0
    for task in os.scandir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task.name}/stat", encoding="ascii") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        running += state == "R"
    return running


def _interrupted(deadline: float, cancel: threading.Event | None) -> bool:
    return time.perf_counter() >= deadline or (cancel is not None and cancel.is_set())
