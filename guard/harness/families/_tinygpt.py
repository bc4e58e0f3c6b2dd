"""Training, scoring and sampling the causal LMs of the ``lm`` family: a transformers GPT-2 built
from a small ``GPT2Config`` and trained from scratch, or any Hugging Face causal LM loaded through
``guard.models.causal_lm`` and fine-tuned.

Token records are (n, L) int64 arrays of language tokens. The network reads a start token
(``start_id``) followed by the first L - 1 tokens, so its L predictions are those of tokens 1..L;
its next-token distributions are renormalised over the ``n_language`` language tokens (the start
token and any other special token are never part of a record and are never sampled when the
network is ours). A model is a ``CausalState``, a picklable copy of the weights; every random
draw (initial weights, batch order, dropout, sampling) comes from a seed the caller takes from
the loop's numpy generator, so fits and samples are reproducible. Sampling is our own loop over
positions with the attention cache (``torch.multinomial`` was the bottleneck of
``model.generate`` here, ~4x slower at a 2000-word vocabulary); beam search uses ``generate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from guard.models.causal_lm import start_token_id


@dataclass
class CausalState:
    """The weights of one model, CPU tensors by parameter name."""

    weights: dict[str, torch.Tensor]


def copy_weights(network: torch.nn.Module) -> CausalState:
    """A CPU copy of ``network``'s weights."""
    return CausalState({name: value.detach().cpu().clone() for name, value in network.state_dict().items()})


class CausalTrainer:
    """Builds, trains, scores and samples the family's networks.

    Args:
        params: the ``lm`` family's Params (network, training and sampling fields).
        n_language: language tokens (ids 0..n_language-1 for a network of ours).
        seq_len: L, tokens per record.
        base: a loaded ``guard.models.causal_lm.CausalLM`` to fine-tune, or None for a GPT-2 from ``params``
            (its vocabulary: the language tokens then the start token).
    """

    def __init__(self, params, n_language: int, seq_len: int, base=None):
        self.params = params
        self.n_language = n_language
        self.seq_len = seq_len
        self.device = torch.device(params.device)
        if base is None:
            self.start_id = n_language
            self.config = GPT2Config(
                vocab_size=n_language + 1, n_positions=seq_len, activation_function="gelu",
                n_embd=params.n_embd, n_layer=params.n_layer, n_head=params.n_head,
                resid_pdrop=params.dropout, embd_pdrop=params.dropout, attn_pdrop=params.dropout,
                bos_token_id=self.start_id, eos_token_id=self.start_id,
            )  # fmt: skip
            self.network = GPT2LMHeadModel(self.config).to(self.device)
            self.base_state = None
        else:
            self.start_id = start_token_id(base.tokenizer)
            self.network = base.model.to(self.device)
            self.base_state = copy_weights(self.network)

    # ----- weights ----------------------------------------------------------------------------
    def _load(self, state: CausalState) -> torch.nn.Module:
        self.network.load_state_dict(state.weights)
        return self.network

    def _initial(self, start: CausalState | None) -> torch.nn.Module:
        """The network at the start of a fit: ``start``, else the pretrained base, else fresh
        GPT-2 weights drawn from the (already seeded) global torch generator."""
        if start is not None:
            return self._load(start)
        if self.base_state is not None:
            return self._load(self.base_state)
        return self._load(CausalState(GPT2LMHeadModel(self.config).state_dict()))

    def with_start(self, tokens: np.ndarray) -> torch.Tensor:
        """(n, L) language tokens -> (n, L) int64 network input: the start token, then tokens
        0..L-2."""
        inputs = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
        start = torch.full((len(inputs), 1), self.start_id, dtype=torch.int64)
        return torch.cat([start, inputs[:, :-1]], dim=1).to(self.device)

    # ----- training ---------------------------------------------------------------------------
    def fit(
        self,
        records: np.ndarray,
        seed: int,
        start: CausalState | None,
        steps: int | None = None,
        progress: str | None = None,
    ) -> CausalState:
        """Train on ``records`` (n, L), from ``start`` or the base, with AdamW and a learning rate
        decaying linearly to 0 (mean next-token cross-entropy, nats): ``epochs`` passes over the
        records, or ``steps`` batches when given (batches keep coming from fresh permutations).
        ``progress``: the description of a tqdm bar over the steps (none when None)."""
        from tqdm.auto import tqdm

        params = self.params
        targets = torch.as_tensor(np.asarray(records, dtype=np.int64)).to(self.device)
        inputs = self.with_start(records)
        steps = steps or params.epochs * -(-len(inputs) // params.batch_size)
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            network = self._initial(start)
            network.train()
            optimiser = torch.optim.AdamW(
                network.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
            )
            schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1.0 - step / steps)
            batches = _batches(len(inputs), params.batch_size, steps, generator)
            for batch in tqdm(batches, total=steps, desc=progress, unit="step", disable=progress is None):
                batch = batch.to(self.device)
                logits = network(input_ids=inputs[batch]).logits
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), targets[batch].reshape(-1)
                )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
        network.eval()
        return copy_weights(network)

    # ----- scoring ----------------------------------------------------------------------------
    @torch.no_grad()
    def batch_logits(self, state: CausalState, records: np.ndarray):
        """Yield (b, L, n_language) float32 CPU logits of the L tokens of ``records`` (n, L), in
        consecutive batches of at most ``eval_batch_size`` records."""
        network = self._load(state).eval()
        for batch in self.with_start(records).split(self.params.eval_batch_size):
            yield network(input_ids=batch).logits[..., : self.n_language].float().cpu()

    def logits(self, state: CausalState, records: np.ndarray) -> torch.Tensor:
        """(n, L, n_language) float32 logits of the L tokens of ``records`` (n, L)."""
        return torch.cat(list(self.batch_logits(state, records)))

    def log_probabilities(self, state: CausalState, records: np.ndarray) -> np.ndarray:
        """(n, L, n_language) float64 log next-token probabilities, over the language tokens."""
        return torch.log_softmax(self.logits(state, records).double(), dim=-1).numpy()

    def token_nll(self, state: CausalState, records: np.ndarray) -> np.ndarray:
        """(n,) mean negative log-likelihood per token of each record (nats)."""
        targets = torch.as_tensor(np.asarray(records, dtype=np.int64)).split(self.params.eval_batch_size)
        nll = [
            torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch_targets, reduction="none").mean(
                dim=1
            )
            for logits, batch_targets in zip(self.batch_logits(state, records), targets)
        ]
        return torch.cat(nll).double().numpy()

    # ----- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, state: CausalState, prompts: np.ndarray, seed: int) -> np.ndarray:
        """(n, L) records: each row of ``prompts`` (n, k), k < L, continued by L - k tokens, drawn
        with ``temperature`` and ``top_p`` (num_beams 1) or found by beam search (num_beams > 1,
        ``model.generate``; deterministic)."""
        prompts = np.asarray(prompts, dtype=np.int64)
        if not len(prompts):
            return np.zeros((0, self.seq_len), dtype=np.int64)
        network = self._load(state).eval()
        start = torch.full((len(prompts), 1), self.start_id, dtype=torch.int64)
        inputs = torch.cat([start, torch.as_tensor(prompts)], dim=1).to(self.device)
        new_tokens = self.seq_len - prompts.shape[1]
        generator = torch.Generator(self.device).manual_seed(seed)
        continued = [
            self._beam_search(network, batch, new_tokens)
            if self.params.num_beams > 1
            else self._draw(network, batch, new_tokens, generator)
            for batch in inputs.split(self.params.eval_batch_size)
        ]
        return torch.cat([inputs[:, 1:].cpu(), torch.cat(continued)], dim=1).numpy()

    def _draw(
        self, network, inputs: torch.Tensor, new_tokens: int, generator: torch.Generator
    ) -> torch.Tensor:
        """(b, new_tokens) tokens drawn one position at a time after ``inputs`` (b, k), reusing
        the attention cache; inverse-CDF draws from the tempered, nucleus-cut distribution over
        the language tokens."""
        params = self.params
        past, step_input, drawn = None, inputs, []
        cache = _cache_argument(network)
        for _ in range(new_tokens):
            output = network(input_ids=step_input, use_cache=True, **{cache: past})
            past = output[cache]
            weights = torch.softmax(
                output.logits[:, -1, : self.n_language].float() / params.temperature, dim=-1
            )
            if params.top_p < 1.0:
                weights = nucleus(weights, params.top_p)
            cumulative = weights.cumsum(dim=-1)
            targets = (
                torch.rand((len(weights), 1), generator=generator, device=self.device) * cumulative[:, -1:]
            )
            step_input = torch.searchsorted(cumulative, targets, right=True).clamp(max=self.n_language - 1)
            drawn.append(step_input.cpu())
        return torch.cat(drawn, dim=1)

    def _beam_search(self, network, inputs: torch.Tensor, new_tokens: int) -> torch.Tensor:
        """(b, new_tokens) continuations of ``inputs`` (b, k) by ``num_beams``-way beam search."""
        banned = list(range(self.n_language, network.get_output_embeddings().weight.shape[0]))
        generated = network.generate(
            input_ids=inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            num_beams=self.params.num_beams,
            suppress_tokens=banned or None,
            pad_token_id=self.start_id,
        )
        return generated[:, inputs.shape[1] :].cpu()


def nucleus(weights: torch.Tensor, top_p: float) -> torch.Tensor:
    """``weights`` (b, V) of probability distributions with every token outside the nucleus set
    to 0: a token stays when the tokens more probable than it hold less than ``top_p`` of the
    mass (Holtzman et al.'s top-p; the most probable token always stays). Not renormalised."""
    ordered, order = weights.sort(dim=-1, descending=True)
    more_probable = ordered.cumsum(dim=-1) - ordered
    return torch.zeros_like(weights).scatter(-1, order, ordered.masked_fill(more_probable >= top_p, 0.0))


def _cache_argument(network) -> str:
    """The name under which ``network``'s forward takes and returns its attention cache: ``cache``
    in transformers 5 (which warns on the old name at every call), ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(network.forward).parameters else "past_key_values"


def _batches(n: int, batch_size: int, steps: int, generator: torch.Generator):
    """``steps`` index batches (at most ``batch_size`` each) over range(n): consecutive slices of
    fresh random permutations."""
    per_epoch = -(-n // batch_size)
    for epoch in range(-(-steps // per_epoch)):
        yield from torch.randperm(n, generator=generator).split(batch_size)[: steps - epoch * per_epoch]
